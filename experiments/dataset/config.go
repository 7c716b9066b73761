package dataset

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/strata-rl/strata/schemas/grid"
)

// Defaults of Config.
const (
	// DefaultSplits are seed §2.3's temporal splits: days 1–10 train,
	// 11–12 validation, 13–14 test.
	DefaultSplits = "1-10,11-12,13-14"
	// DefaultLateness is how far out of start order the trace may be, as
	// the replay's default (the Azure 2021 file is ordered by end time and
	// its longest duration is under 10 minutes).
	DefaultLateness = 10 * time.Minute
)

// ErrConfig is wrapped by Config.Validate and ParseSplits errors.
var ErrConfig = errors.New("invalid dataset config")

// Split names, in the order of --splits.
var splitNames = [3]string{"train", "valid", "test"}

// Split is one split: a name and a range of trace days, 1-based inclusive.
type Split struct {
	// Name is "train", "valid" or "test"; the split's file is Name.parquet.
	Name string `json:"name"`
	// FirstDay and LastDay bound its days, 1-based inclusive: day d holds
	// the starts in [(d−1)·24 h, d·24 h) of trace time.
	FirstDay int `json:"first_day"`
	LastDay  int `json:"last_day"`
}

// Days returns the split's days as "first-last".
func (s Split) Days() string { return fmt.Sprintf("%d-%d", s.FirstDay, s.LastDay) }

// Splits are the training, validation and test splits, in that order.
type Splits [3]Split

// ParseSplits parses --splits: three day ranges "A-B" or "A" (1-based,
// inclusive) separated by commas, for training, validation and test, in
// increasing order without overlap (gaps between them are allowed; their
// days are in no split).
func ParseSplits(s string) (Splits, error) {
	var out Splits
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("parsing --splits %q: %w: want three day ranges TRAIN,VALID,TEST, e.g. %s", s, ErrConfig, DefaultSplits)
	}
	for i, p := range parts {
		a, b, ok := strings.Cut(strings.TrimSpace(p), "-")
		if !ok {
			b = a
		}
		first, err1 := strconv.Atoi(strings.TrimSpace(a))
		last, err2 := strconv.Atoi(strings.TrimSpace(b))
		if err1 != nil || err2 != nil || first < 1 || last < first {
			return out, fmt.Errorf("parsing --splits %q: %w: %s days %q are not FIRST-LAST, 1-based, first ≤ last", s, ErrConfig, splitNames[i], p)
		}
		out[i] = Split{Name: splitNames[i], FirstDay: first, LastDay: last}
		if i > 0 && first <= out[i-1].LastDay {
			return out, fmt.Errorf("parsing --splits %q: %w: %s days %s do not come after %s days %s (splits are temporal: train, then valid, then test)",
				s, ErrConfig, splitNames[i], out[i].Days(), splitNames[i-1], out[i-1].Days())
		}
	}
	return out, nil
}

// String returns the splits as --splits takes them.
func (s Splits) String() string {
	return s[0].Days() + "," + s[1].Days() + "," + s[2].Days()
}

// Of returns the index of the split holding day (1-based), or -1.
func (s Splits) Of(day int) int {
	for i, sp := range s {
		if day >= sp.FirstDay && day <= sp.LastDay {
			return i
		}
	}
	return -1
}

// LastDay returns the last day of the test split.
func (s Splits) LastDay() int { return s[2].LastDay }

// Config configures `strata export dataset` but for the trace it reads
// (the command's --trace, --synth-days, --seed and --apps) and the cloud
// model (--config's model and catalog sections).
type Config struct {
	// Out is the directory written (required); it is created if missing.
	Out string
	// Splits are the day ranges of the splits (ParseSplits).
	Splits string
	// Epoch is trace time 0 in RFC 3339; it sets hours of day, weekdays
	// and the hour of the carbon and renewable series.
	Epoch string
	// Lateness is how far out of start order the trace may be; later rows
	// are dropped and counted, as the replay dead-letters them.
	Lateness time.Duration
}

// DefaultConfig returns the defaults: DefaultSplits, grid.DefaultEpoch,
// DefaultLateness.
func DefaultConfig() Config {
	return Config{Splits: DefaultSplits, Epoch: grid.DefaultEpoch.Format(time.RFC3339), Lateness: DefaultLateness}
}

// RegisterFlags registers --out, --splits, --trace-epoch and
// --allowed-lateness, each name preceded by prefix; their defaults are c's
// values.
func (c *Config) RegisterFlags(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&c.Out, prefix+"out", c.Out, "write the dataset into `DIR` (required; created if missing)")
	fs.StringVar(&c.Splits, prefix+"splits", c.Splits, "day ranges of the train, validation and test splits, 1-based inclusive, in increasing order")
	fs.StringVar(&c.Epoch, prefix+"trace-epoch", c.Epoch, "wall-clock instant of trace time 0 (sets hour of day, weekday and the carbon hour)")
	fs.DurationVar(&c.Lateness, prefix+"allowed-lateness", c.Lateness, "how far out of start order the trace may be; later rows are dropped and counted")
}

// Validate reports a missing --out, splits or an epoch that do not parse
// and a negative lateness; each error wraps ErrConfig.
func (c *Config) Validate() error {
	if c.Out == "" {
		return fmt.Errorf("%w: --out is required", ErrConfig)
	}
	if _, err := ParseSplits(c.Splits); err != nil {
		return err
	}
	if _, err := c.EpochTime(); err != nil {
		return err
	}
	if c.Lateness < 0 {
		return fmt.Errorf("%w: --allowed-lateness %s is negative", ErrConfig, c.Lateness)
	}
	return nil
}

// EpochTime parses Epoch, in UTC.
func (c *Config) EpochTime() (time.Time, error) {
	t, err := time.Parse(time.RFC3339, c.Epoch)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing --trace-epoch %q (want RFC 3339, e.g. 2022-01-30T00:00:00Z): %w: %w", c.Epoch, ErrConfig, err)
	}
	return t.UTC(), nil
}

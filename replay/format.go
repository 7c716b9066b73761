package replay

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Format names a trace format.
type Format string

// The trace formats.
const (
	// FormatAuto picks the format from the path: a directory is
	// FormatAzure2019, a .parquet file FormatParquet, any other file
	// FormatAzure2021, or FormatCSV when a column mapping is given.
	FormatAuto Format = "auto"
	// FormatAzure2021 is the Azure Functions 2021 CSV (CSVReader).
	FormatAzure2021 Format = "azure2021"
	// FormatAzure2019 is a directory of Azure Functions 2019 files
	// (Azure2019Reader).
	FormatAzure2019 Format = "azure2019"
	// FormatCSV is a CSV with a header, read through a column mapping
	// (ColumnReader).
	FormatCSV Format = "csv"
	// FormatParquet is a Parquet file, read through a column mapping
	// (ParquetReader).
	FormatParquet Format = "parquet"
)

// Formats are the formats ParseFormat accepts.
var Formats = []Format{FormatAuto, FormatAzure2021, FormatAzure2019, FormatCSV, FormatParquet}

// ErrFormat is wrapped by the errors of a trace format that is unknown or
// does not fit the trace or the other options.
var ErrFormat = errors.New("invalid trace format")

// ParseFormat parses a format name; "" is FormatAuto.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return FormatAuto, nil
	}
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("trace format %q: want one of %s: %w", s, strings.Join(names, ", "), ErrFormat)
}

// ReadCloser is a trace source that holds resources until closed.
type ReadCloser interface {
	Source
	// Close releases the source's files.
	Close() error
}

// OpenConfig says how Open reads a trace.
type OpenConfig struct {
	// Format is the trace's format; "" is FormatAuto.
	Format Format
	// Columns is a column mapping (ParseColumns) for FormatCSV and
	// FormatParquet; "" is DefaultColumns. The Azure formats take none.
	Columns string
	// Seed keys the expansion of an Azure 2019 trace (Azure2019Config).
	Seed int64
}

// Check reports a format that does not parse, a column mapping that does
// not parse, and a mapping given to an Azure format, without looking at
// any file.
func (c OpenConfig) Check() error {
	f, err := ParseFormat(string(c.Format))
	if err != nil {
		return err
	}
	if _, err := ParseColumns(c.Columns); err != nil {
		return err
	}
	if c.Columns != "" && (f == FormatAzure2021 || f == FormatAzure2019) {
		return fmt.Errorf("trace format %s has fixed columns; --trace-columns is for csv and parquet: %w", f, ErrFormat)
	}
	return nil
}

// DetectFormat returns the format FormatAuto picks for path: FormatAzure2019
// for a directory, FormatParquet for a name ending in .parquet, otherwise
// FormatCSV when columns (a mapping is given) and FormatAzure2021 when
// not.
func DetectFormat(path string, columns bool) (Format, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("opening trace: %w", err)
	}
	switch {
	case st.IsDir():
		if columns {
			return "", fmt.Errorf("trace %s is a directory, read as an Azure 2019 trace, which has fixed columns; --trace-columns is for csv and parquet: %w", path, ErrFormat)
		}
		return FormatAzure2019, nil
	case strings.HasSuffix(strings.ToLower(path), ".parquet"):
		return FormatParquet, nil
	case columns:
		return FormatCSV, nil
	}
	return FormatAzure2021, nil
}

// Open opens the trace at path as cfg says and returns it with its format
// (the one detected when cfg.Format is FormatAuto). Close it when done.
func Open(path string, cfg OpenConfig) (ReadCloser, Format, error) {
	if err := cfg.Check(); err != nil {
		return nil, "", err
	}
	f, _ := ParseFormat(string(cfg.Format))
	if f == FormatAuto {
		var err error
		if f, err = DetectFormat(path, cfg.Columns != ""); err != nil {
			return nil, "", err
		}
	}
	cols, _ := ParseColumns(cfg.Columns)
	var (
		r   ReadCloser
		err error
	)
	switch f {
	case FormatAzure2021:
		r, err = OpenTrace(path)
	case FormatAzure2019:
		r, err = NewAzure2019Reader(Azure2019Config{Dir: path, Seed: cfg.Seed})
	case FormatCSV:
		r, err = OpenColumnTrace(path, cols)
	case FormatParquet:
		r, err = OpenParquet(path, cols)
	}
	if err != nil {
		return nil, "", err
	}
	return r, f, nil
}

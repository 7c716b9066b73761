package train

import "testing"

// TestFingerprintTrace checks the trace part of the resume fingerprint:
// at the default format and mapping it is what it was before
// --trace-format and --trace-columns existed, so older trainings resume;
// a format or mapping changes it.
func TestFingerprintTrace(t *testing.T) {
	tests := []struct {
		name            string
		format, columns string
		want            string
	}{
		{"default", "", "", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0}`},
		{"auto", "auto", "", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0}`},
		{"parquet", "parquet", "start=s", `{"Trace":"x.csv","SynthDays":14,"Seed":1,"Apps":0,"Format":"parquet","Columns":"start=s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Source.Trace, c.Source.Format, c.Source.Columns = "x.csv", tt.format, tt.columns
			if got := c.fingerprint()["trace"]; got != tt.want {
				t.Errorf("fingerprint trace %s, want %s", got, tt.want)
			}
		})
	}
}

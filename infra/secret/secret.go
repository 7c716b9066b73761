package secret

import (
	"net/url"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// tokenFlags are the flags whose values are secrets themselves.
var tokenFlags = map[string]bool{"tokens": true, "token": true}

// secretParams are query parameters of a DSN whose values are secrets.
var secretParams = []string{"password", "pass", "token", "secret"}

// Redact returns s with the password of a URL or DSN in it
// (scheme://user:password@host…) and the values of its password-like query
// parameters masked; anything else is returned unchanged.
func Redact(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: mask everything between "://" and the last "@".
		i, j := strings.Index(s, "://"), strings.LastIndex(s, "@")
		if j > i {
			return s[:i+3] + Mask + s[j:]
		}
		return s
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Mask)
		changed = true
	}
	if q := u.Query(); len(q) > 0 {
		for _, p := range secretParams {
			for k := range q {
				if strings.EqualFold(k, p) {
					q.Set(k, Mask)
					changed = true
				}
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return s
	}
	return u.String()
}

// RedactFlag returns the value of flag name as it may be written down:
// masked for a token flag, a URL's password redacted otherwise.
func RedactFlag(name, value string) string {
	if tokenFlags[strings.TrimLeft(name, "-")] {
		return Mask
	}
	return Redact(value)
}

// RedactArgs returns a copy of a command line with the values of token
// flags (--tokens, --token, as -name value or -name=value) masked and
// every URL's password redacted (Redact).
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	maskNext := false
	for i, a := range args {
		switch {
		case maskNext:
			out[i], maskNext = Mask, false
		case strings.HasPrefix(a, "-"):
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if tokenFlags[name] {
				if hasValue {
					out[i] = a[:strings.Index(a, "=")+1] + Mask
				} else {
					out[i], maskNext = a, true
				}
				continue
			}
			if hasValue {
				eq := strings.Index(a, "=")
				out[i] = a[:eq+1] + Redact(a[eq+1:])
				continue
			}
			out[i] = a
		default:
			out[i] = Redact(a)
		}
	}
	return out
}

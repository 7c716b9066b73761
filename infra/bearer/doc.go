// Package bearer checks HTTP bearer tokens: Parse reads one from an
// Authorization header, a Set holds the accepted tokens' hashes and
// compares in constant time, and Require guards a handler with a Set. The
// ingest service and every metrics listener share it.
package bearer

// Package tlstest makes self-signed certificates, and clients that trust
// them, for tests of strata's HTTPS listeners (ingest, the decisions API,
// metrics).
package tlstest

// Package schemas holds strata's wire contracts: the protobuf event records
// (package stratapb, generated from schemas/proto), the Arrow schemas of the
// per-tick state batches, and the names of the Kafka topics and NATS
// subjects. It has no transports: it never opens a connection.
//
// Every schema is versioned. Topic names end in the version of the record
// they carry (strata.invocations.v1); Arrow batches carry their schema
// version in the schema metadata (key "strata.schema_version").
package schemas

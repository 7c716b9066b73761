// Package kafkatest gives a test a Kafka cluster of its own, the Kafka
// counterpart of natstest: by default an in-process kfake broker that stops
// at the test's cleanup; built with the integration tag, the real brokers
// named by STRATA_KAFKA (infra/.env.test, which `make test-integration`
// exports), with the test's topics and consumer groups under a name prefix
// of its own that are deleted at cleanup.
package kafkatest

#!/bin/bash
# kafka-run-class.sh as librdkafka's Java test helpers (tests/java/run-class.sh) call it: java with
# the helper classes ($CLASSPATH) and the Kafka client jars under $KAFKA_PATH/libs.
exec java -cp "$CLASSPATH:$KAFKA_PATH/libs/*" "$@"

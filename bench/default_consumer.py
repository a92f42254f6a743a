#!/usr/bin/env python3
"""A Kafka consumer with librdkafka's own defaults (confluent-kafka, as a user's script would
make it): reads N messages of a topic from its start and prints one JSON line with the time from
creating the consumer to its first message, to the N-th, and the rate. bench/kafka.py runs it
with the peers' virtualenv against a durable broker.

    python default_consumer.py BOOTSTRAP TOPIC N
"""

import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    start = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "default-consumer",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    first, seen, last_message = None, 0, time.perf_counter()
    while seen < count:
        batch = consumer.consume(10_000, 1.0)
        now = time.perf_counter()
        got = sum(1 for m in batch if m.error() is None)
        if got:
            first = first if first is not None else now - start
            seen += got
            last_message = now
        elif now - last_message > 30:
            sys.exit(f"no message for 30 s after {seen} of {count}")
    took = time.perf_counter() - start
    consumer.close()
    print(json.dumps({"messages": count, "first_message_s": round(first, 3),
                      "consume_s": round(took, 3), "consume_per_s": round(count / took)}))


if __name__ == "__main__":
    main()

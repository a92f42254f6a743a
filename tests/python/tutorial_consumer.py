"""The tutorial's result reader: a kafka-python KafkaConsumer on topic `result` that prints each
message, here also parsing the [{"0":1},{"2":3},{"1":6}] arrays and stopping once the counts add
up to the expected number of rows (or at the timeout). Last line: the totals as JSON.

usage: tutorial_consumer.py BOOTSTRAP EXPECTED_ROWS [--timeout SECONDS]
"""

import argparse
import json
import time

from kafka import KafkaConsumer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("expected", type=int)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    consumer = KafkaConsumer(
        "result",
        bootstrap_servers=args.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=1000,
    )
    totals: dict[str, int] = {}
    deadline = time.monotonic() + args.timeout
    while sum(totals.values()) < args.expected and time.monotonic() < deadline:
        for message in consumer:
            text = message.value.decode("utf8")
            print(text, flush=True)
            for group in json.loads(text):
                for key, count in group.items():
                    totals[key] = totals.get(key, 0) + count
            if sum(totals.values()) >= args.expected:
                break
    consumer.close()
    print(json.dumps(totals, sort_keys=True))


if __name__ == "__main__":
    main()

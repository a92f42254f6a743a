"""The tutorial's producer.py, as its readers run it: read the user log with the csv module and
send each row's gender digit to topic `sex` with kafka-python (no idempotence, default settings
unless --safe). Prints how many rows it sent.

usage: tutorial_producer.py BOOTSTRAP CSV [--delay SECONDS] [--safe]
"""

import argparse
import csv
import time

from kafka import KafkaProducer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("csv")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--safe", action="store_true", help="one request in flight at a time")
    args = parser.parse_args()

    settings = {"bootstrap_servers": args.bootstrap}
    if args.safe:
        settings["max_in_flight_requests_per_connection"] = 1
    producer = KafkaProducer(**settings)
    sent = 0
    with open(args.csv, newline="") as rows:
        for row in csv.reader(rows):
            if not row or row[9] == "gender":  # header
                continue
            if args.delay:
                time.sleep(args.delay)
            producer.send("sex", row[9].encode("utf8"))
            sent += 1
    producer.flush()
    producer.close()
    print(sent)


if __name__ == "__main__":
    main()

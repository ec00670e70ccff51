"""Reads an event folder with the tensorboard package and prints its scalars as JSON:
{tag: [[step, value], ...]}.  Usage: tensorboard_read.py DIR"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1])
acc.Reload()
print(json.dumps({tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}))

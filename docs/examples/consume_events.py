#!/usr/bin/env python3
"""Consume gsmgw events: at-least-once delivery made exactly-once, gaps spotted.

Every event carries `id` (unique) and `seq` (per gateway, +1 per event, kept across restarts).
The broker may deliver an event twice (QoS 1, a reconnect): skip an `id` already seen. A `seq`
that jumps means events you have not seen yet (they may still come, out of order after a
reconnect) — log it, do not drop anything.

    pip install paho-mqtt   (Debian: apt-get install python3-paho-mqtt)
    python3 consume_events.py --host 127.0.0.1 --port 1883

A real consumer keeps `seen` and `last_seq` in its database, in the same transaction as the
event itself, and uses a persistent session (clean_session=False, a fixed client id).
"""
import argparse
import json
import sys

import paho.mqtt.client as mqtt

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, default=1883)
p.add_argument("--client-id", default="central-consumer")
p.add_argument("--count", type=int, default=0, help="exit after this many new events (0: never)")
a = p.parse_args()

seen = set()          # event ids already handled
last_seq = {}         # gateway -> highest seq handled
handled = 0


def on_connect(client, userdata, flags, rc, *_):
    client.subscribe("gsmgw/+/event/#", qos=1)
    print("connected", flush=True)


def on_message(client, userdata, msg):
    global handled
    ev = json.loads(msg.payload)
    if ev["id"] in seen:
        print(f"duplicate {ev['id']} skipped", flush=True)
        return
    seen.add(ev["id"])
    gw, seq = ev["gateway"], ev["seq"]
    prev = last_seq.get(gw)
    if prev is not None and seq > prev + 1:
        print(f"gap {gw}: seq {prev + 1}..{seq - 1} not seen yet", flush=True)
    last_seq[gw] = max(seq, prev or 0)
    print(f"event {gw} {ev['type']} seq {seq} {msg.topic}", flush=True)
    handled += 1
    if a.count and handled >= a.count:
        client.disconnect()


try:  # paho-mqtt 2.x
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=a.client_id, clean_session=False)
except AttributeError:  # paho-mqtt 1.x
    client = mqtt.Client(client_id=a.client_id, clean_session=False)
client.on_connect = on_connect
client.on_message = on_message
client.connect(a.host, a.port, keepalive=30)
client.loop_forever()
sys.exit(0)

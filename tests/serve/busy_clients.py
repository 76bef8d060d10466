"""Keeps a server busy for a signal test: THREADS clients post BODY to /v2/models/mlp/infer on
127.0.0.1:PORT in a loop for SECONDS (a client stops once the listening socket is gone), then
prints a JSON count of the outcomes: HTTP status, "refused", or the exception's name for a
request cut off midway.
Usage: busy_clients.py PORT BODY_FILE SECONDS THREADS"""
import http.client
import json
import sys
import threading
import time

port, body = int(sys.argv[1]), open(sys.argv[2]).read()
stop, nthreads = time.time() + float(sys.argv[3]), int(sys.argv[4])
outcomes, lock = {}, threading.Lock()


def client():
    while time.time() < stop:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            key = str(r.status)
        except ConnectionRefusedError:
            key = "refused"  # the listening socket is gone: never accepted
        except Exception as e:  # noqa: BLE001 - reset or cut off mid-request: a lost request
            key = type(e).__name__
        with lock:
            outcomes[key] = outcomes.get(key, 0) + 1
        if key == "refused":
            break


threads = [threading.Thread(target=client) for _ in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(outcomes))

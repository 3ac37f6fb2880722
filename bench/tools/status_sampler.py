"""Samples one service's status while something else loads the daemon, from a process of its
own (a thread beside the load's client threads would measure their lock on the interpreter,
not the daemon). Prints one latency in milliseconds per line once stdin closes.
  status_sampler.py URL TOKEN PATH"""
import http.client
import sys
import threading
import time
from urllib.parse import urlsplit

url, token, path = sys.argv[1], sys.argv[2], sys.argv[3]
parts = urlsplit(url)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
samples = []
while not done.is_set():
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": "Bearer " + token})
    response = conn.getresponse()
    response.read()
    samples.append((time.perf_counter() - t0) * 1000)
    if response.status != 200:
        sys.exit(f"status_sampler: {path} answered {response.status}")
    time.sleep(0.005)
print("\n".join(f"{s:.3f}" for s in samples))

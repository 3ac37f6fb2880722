-- wrk script: GET one of N registered services, round robin, with the bearer token.
local token = os.getenv("BERTH_TOKEN")
local count = tonumber(os.getenv("BENCH_SERVICES") or "1000")
local path = os.getenv("BENCH_PATH")
local i = 0
request = function()
  i = i + 1
  local target = path or string.format("/api/v1/services/svc-%d", i % count)
  return wrk.format("GET", target, {["Authorization"] = "Bearer " .. token})
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end

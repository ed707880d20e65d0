-- wrk's report for `cargo xtask bench --load` (xtask/src/load.rs): one line of
-- key=value pairs after the run, latencies in microseconds, read by the xtask.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "stanchion-load: requests=%d duration_us=%d non_2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

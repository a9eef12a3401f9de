-- wrk script: GET /fax/$FAX_JOB_ID with $FAX_API_KEY.
wrk.method = "GET"
wrk.path = "/fax/" .. (os.getenv("FAX_JOB_ID") or "")
wrk.headers["X-API-Key"] = os.getenv("FAX_API_KEY") or ""
function done(summary, latency, requests)
  io.write(string.format("RESULT p50=%.2f p99=%.2f rps=%.1f requests=%d non2xx=%d errors=%d\n",
    latency:percentile(50)/1000, latency:percentile(99)/1000, summary.requests / (summary.duration / 1e6),
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

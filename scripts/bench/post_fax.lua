-- wrk script: POST /fax with a multipart body (to + a PDF), authenticated with $FAX_API_KEY.
-- Based on shared/bench/post_fax.lua; adds an optional fixed per-connection delay (FAX_DELAY_MS) so a
-- run can hold a target rate, and counts non-202 answers across all threads.
local key = os.getenv("FAX_API_KEY") or ""
local path = os.getenv("FAX_PDF") or "one.pdf"
local delay_ms = tonumber(os.getenv("FAX_DELAY_MS") or "0")
local f = assert(io.open(path, "rb")); local pdf = f:read("*all"); f:close()
local b = "----faxbench7d3f"
local body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n+15551234567\r\n" ..
  "--" .. b .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.pdf\"\r\nContent-Type: application/pdf\r\n\r\n" ..
  pdf .. "\r\n--" .. b .. "--\r\n"
wrk.method = "POST"
wrk.path = "/fax"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
if key ~= "" then wrk.headers["X-API-Key"] = key end
if delay_ms > 0 then function delay() return delay_ms end end
function done(summary, latency, requests)
  io.write(string.format("RESULT p50=%.2f p99=%.2f rps=%.1f requests=%d non2xx=%d errors=%d\n",
    latency:percentile(50)/1000, latency:percentile(99)/1000, summary.requests / (summary.duration / 1e6),
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

-- wrk script: POST /v1/tasks with one fixed JSON task into an existing session.
-- Usage: wrk -t1 -c64 -d10s --latency -s bench/wrk/post_task.lua http://127.0.0.1:PORT -- SESSION_ID
-- max_tokens 1 keeps background execution minimal; the request is formatted once per thread.
local request_bytes

function init(args)
   local session = args[1]
   if session == nil then
      error("usage: wrk ... -s post_task.lua URL -- SESSION_ID")
   end
   local body = string.format(
      '{"session_id":"%s","prompt":"Write a haiku about queues.","max_tokens":1}', session)
   request_bytes = wrk.format("POST", "/v1/tasks", {["Content-Type"] = "application/json"}, body)
end

function request()
   return request_bytes
end

-- A machine-readable summary: wrk's own latency table sometimes goes missing
-- (seen with wrk 4.1 from Debian), so the benchmark parses this line first.
function done(summary, latency, requests)
   io.write(string.format(
      'BENCH-JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"non_2xx":%d,"timeouts":%d,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, summary.errors.status, summary.errors.timeout,
      summary.errors.connect, summary.errors.read, summary.errors.write))
end

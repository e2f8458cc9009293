-- wrk script for benchmarks/run.py: rotates Authorization headers over the tokens in a
-- file (one header value per line, passed as `-- FILE`; "-" for none) and prints the
-- summary as one JSON line prefixed "WRKJSON " so the runner need not scrape wrk's text.

local values = {}
local counter = 0

function init(args)
  local path = args[1]
  if path ~= nil and path ~= "-" then
    for line in io.lines(path) do
      if #line > 0 then
        values[#values + 1] = line
      end
    end
  end
  counter = math.random(0, 1000)
end

function request()
  if #values == 0 then
    return wrk.format(nil, nil, nil, nil)
  end
  counter = counter + 1
  return wrk.format(nil, nil, { ["Authorization"] = values[counter % #values + 1] }, nil)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end

-- wrk script for bench/receiver.py's latency run: like receiver_load.lua, but each
-- connection waits between requests so that all together send about RATE per second
-- (third script argument; the fourth is the connection count).
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = {}
local count = 0
local index = 0
local pause_ms = 0

function init(args)
  local threads = tonumber(args[2])
  pause_ms = 1000 * tonumber(args[4]) / tonumber(args[3])
  local line_number = 0
  for line in io.lines(args[1]) do
    if line_number % threads == id then
      local sig, wid, wts, wsig, body =
        line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      count = count + 1
      requests[count] = wrk.format("POST", "/webhooks", {
        ["Content-Type"] = "application/json",
        ["X-Selz-Signature"] = sig,
        ["webhook-id"] = wid,
        ["webhook-timestamp"] = wts,
        ["webhook-signature"] = wsig,
      }, body)
    end
    line_number = line_number + 1
  end
end

function delay()
  return pause_ms
end

function request()
  index = index % count + 1
  return requests[index]
end

-- wrk's --latency table stops at 99 %: the tail the targets name is printed here.
function done(summary, latency, requests)
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("percentile %g %d\n", p, latency:percentile(p)))
  end
end

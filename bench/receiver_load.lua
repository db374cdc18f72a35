-- wrk script for bench/receiver.py: each thread sends its own share of pre-signed
-- webhooks (every request has its own token), one per line in the file given as the
-- first script argument: selz-signature TAB webhook-id TAB webhook-timestamp TAB
-- webhook-signature TAB body. The second argument is wrk's thread count.
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

local requests = {}
local count = 0
local index = 0

function init(args)
  local threads = tonumber(args[2])
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

function request()
  index = index % count + 1
  return requests[index]
end

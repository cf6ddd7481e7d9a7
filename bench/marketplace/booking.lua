-- wrk: POST /api/v1/bookings with signed-in students, each request a different free
-- start (from the generator's bookable.txt); threads take disjoint parts of the list.
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  tokens, slots = {}, {}
  for line in io.lines("bench/marketplace/out/tokens.txt") do tokens[#tokens + 1] = line end
  local i = 0
  for line in io.lines("bench/marketplace/out/bookable.txt") do
    i = i + 1
    -- run with -t2: thread tid takes every second line
    if i % 2 == tid then slots[#slots + 1] = line end
  end
  math.randomseed(os.time() + tid * 7919)
  k = math.random(#slots)  -- start somewhere new each run: earlier runs took their slots
end
request = function()
  k = k + 1
  local tutor, start = slots[(k - 1) % #slots + 1]:match("([^,]+),(.+)")
  local body = '{"tutor_id": "' .. tutor .. '", "start": "' .. start .. '", "length": 60}'
  return wrk.format("POST", "/api/v1/bookings", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. tokens[math.random(#tokens)],
  }, body)
end
local codes = {}
response = function(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
done = function(summary, latency, requests)
  io.write("------------------------------\n")
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("p%d: %.2f ms\n", p, latency:percentile(p) / 1000))
  end
end

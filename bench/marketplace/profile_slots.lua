-- wrk: a tutor's public profile, then a week of free slots in the viewer's zone.
local ids = {}
for line in io.lines("bench/marketplace/out/tutors.txt") do ids[#ids + 1] = line end
local from = os.date("!%Y-%m-%d", os.time() + 86400 * 7)
local to = os.date("!%Y-%m-%d", os.time() + 86400 * 13)
local n = 0
request = function()
  n = n + 1
  local id = ids[math.random(#ids)]
  if n % 2 == 1 then
    return wrk.format("GET", "/api/v1/tutors/" .. id)
  end
  return wrk.format("GET", "/api/v1/tutors/" .. id .. "/slots?from=" .. from .. "&to=" .. to ..
                    "&tz=Europe/London&length=60")
end

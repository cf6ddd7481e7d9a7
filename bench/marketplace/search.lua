-- wrk: full-text search mixed with filters and sorts (anonymous).
local words = {"algebra", "geometry", "calculus", "statistics", "physics", "chemistry", "biology",
               "english", "french", "spanish", "german", "python", "piano", "guitar", "exam"}
local extras = {"&sort=rating", "&sort=soonest", "&sort=relevance",
                "&subject=mathematics&sort=rating", "&language=fr&sort=rating",
                "&min_rating=4&sort=rating", "&level=secondary&sort=rating"}
request = function()
  local path = "/api/v1/tutors?limit=20&q=" .. words[math.random(#words)] .. extras[math.random(#extras)]
  return wrk.format("GET", path)
end

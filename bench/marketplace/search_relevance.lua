-- wrk: exactly the query of search.pgbench.sql, through the app: one word, relevance order.
local words = {"algebra", "geometry", "calculus", "statistics", "physics", "chemistry", "biology",
               "english", "french", "spanish", "german", "python", "piano", "guitar", "exam"}
request = function()
  return wrk.format("GET", "/api/v1/tutors?limit=20&sort=relevance&q=" .. words[math.random(#words)])
end

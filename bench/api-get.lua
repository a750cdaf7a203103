-- wrk script: GET /items/{id} with ids spread uniformly over the seeded rows
-- (same distribution as bench/pgbench-get.sql). ITEMS comes from the environment.
local items = tonumber(os.getenv("ITEMS") or "10000")

request = function()
  return wrk.format("GET", "/items/" .. math.random(1, items))
end

-- wrk script: POST /items with the teaching stack's own body (same row as bench/pgbench-post.sql).
local headers = { ["Content-Type"] = "application/json" }
local body = '{"nom":"Test","prix":10.5}'

request = function()
  return wrk.format("POST", "/items", headers, body)
end

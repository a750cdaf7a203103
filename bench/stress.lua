-- The teaching stack's CRUD mix for wrk (bench/stress.sh): the weights of loadgen/locustfile.py
-- (create 5, list 4, read 6, update 2, delete 1, unknown id 1) and, when THINK_MAX_MS > 0,
-- Locust's think time between a connection's requests (`between(0.05, 0.3)` there), so one wrk
-- connection behaves like one Locust user at a fraction of Locust's CPU.
--
-- Reads and updates target the ITEMS seeded rows; deletes only take ids this thread created
-- (read back from the 201s), so no read races a delete and every 404 is a deliberate one.
-- done() prints one `stress` line: socket errors, latency percentiles, counts by status (code:n).

local items = tonumber(os.getenv("ITEMS") or "10000")
local think_min = tonumber(os.getenv("THINK_MIN_MS") or "50")
local think_max = tonumber(os.getenv("THINK_MAX_MS") or "300")
local json = { ["Content-Type"] = "application/json", ["User-Agent"] = "stress/redside (load test)" }
local plain = { ["User-Agent"] = "stress/redside (load test)" }
local mix = {}
for op, weight in pairs({ create = 5, list = 4, read = 6, update = 2, delete = 1, unknown = 1 }) do
    for _ = 1, weight do mix[#mix + 1] = op end
end

local threads = {}
function setup(thread)
    thread:set("id", #threads)
    threads[#threads + 1] = thread
end

-- Per thread (each has its own Lua state): status counts and the ids it may delete.
codes = {}
local created = {}

function init(_)
    math.randomseed(os.time() + id * 7919)
end

local function item_body(n)
    return string.format('{"nom":"stress-%d","prix":%.2f}', n, math.random(100, 12000) / 100)
end

function request()
    local op = mix[math.random(#mix)]
    if op == "delete" and #created == 0 then op = "read" end
    if op == "create" then
        return wrk.format("POST", "/items", json, item_body(math.random(1000000)))
    elseif op == "list" then
        return wrk.format("GET", "/items", plain)
    elseif op == "read" then
        return wrk.format("GET", "/items/" .. math.random(items), plain)
    elseif op == "update" then
        local i = math.random(items)
        return wrk.format("PUT", "/items/" .. i, json, item_body(i))
    elseif op == "delete" then
        return wrk.format("DELETE", "/items/" .. table.remove(created), plain)
    else
        return wrk.format("GET", "/items/" .. (900000000 + math.random(1000)), plain)
    end
end

function response(status, _, body)
    codes[status] = (codes[status] or 0) + 1
    if status == 201 then
        local i = body and body:match('"id"%s*:%s*(%d+)')
        if i then created[#created + 1] = i end
    end
end

if think_max > 0 then
    function delay()
        return math.random(think_min, think_max)
    end
end

function done(summary, latency, _)
    local total = {}
    for _, thread in ipairs(threads) do
        for status, n in pairs(thread:get("codes")) do total[status] = (total[status] or 0) + n end
    end
    local parts = {}
    for status, n in pairs(total) do parts[#parts + 1] = status .. ":" .. n end
    table.sort(parts)
    local e = summary.errors
    io.write(string.format(
        "stress requests=%d seconds=%.3f p50=%.3f p95=%.3f p99=%.3f max=%.3f connect=%d read=%d write=%d timeout=%d codes=%s\n",
        summary.requests, summary.duration / 1e6,
        latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3,
        latency.max / 1e3, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end

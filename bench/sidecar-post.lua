-- wrk script: POST /echo with a 1 KiB JSON body (bench/sidecar.sh).
local headers = { ["Content-Type"] = "application/json" }
local body = '{"data":"' .. string.rep("x", 1011) .. '"}'

request = function()
  return wrk.format("POST", "/echo", headers, body)
end

-- wrk script: `PATCH <base>/Users/<id>` setting `active` to false on a random user per request.
-- Env: BENCH_TOKEN (bearer token), BENCH_IDS_FILE (one SCIM user id a line). The base path is the
-- path of the URL given to wrk, e.g. http://127.0.0.1:PORT/scim/v2/bench.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local paths = {}
local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
  .. '"Operations":[{"op":"replace","path":"active","value":false}]}'

function init(args)
  bench_init()
  bench_headers["Content-Type"] = "application/scim+json"
  for i, id in ipairs(bench_lines(bench_env("BENCH_IDS_FILE"))) do
    paths[i] = wrk.path .. "/Users/" .. bench_encode(id)
  end
end

function request()
  return wrk.format("PATCH", paths[math.random(#paths)], bench_headers, body)
end

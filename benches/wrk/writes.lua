-- wrk script: the write paths besides the pairs, each call following the one before on the
-- same id, so every write finds what it changes:
--   WRITES=sessions  POST /genesys/1/service/callback, then DELETE of that session
--   WRITES=storage   POST /genesys/1/storage/60, then a change of that entry
--                    (POST …/{id}/60), then its DELETE
--   WRITES=interactions  POST /genesys/1/service/request-interaction (a new session and its
--                    number), then the match-interaction that gives the number back
-- Each thread keeps its own queue of follow-up calls (its answers carry the id: "_id" or
-- "id"); request() sends the oldest queued one, else a new creation. Used by writes.sh.
local kind = os.getenv("WRITES") or "sessions"
local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local queue, stage = {}, {}

local function push(method, path, body, next_stage, id)
  stage[id] = next_stage
  queue[#queue + 1] = wrk.format(method, path, body and form or nil, body)
end

function request()
  if #queue > 0 then
    return table.remove(queue, 1)
  end
  if kind == "storage" then
    return wrk.format("POST", "/genesys/1/storage/60", form, "note=a")
  end
  if kind == "interactions" then
    return wrk.format("POST", "/genesys/1/service/request-interaction", form, "customer=1")
  end
  return wrk.format("POST", "/genesys/1/service/callback", form, "customer=1")
end

function response(status, headers, body)
  if status ~= 200 then
    return
  end
  if kind == "interactions" then
    local number = string.match(body, '"_access_number":"([^"]+)"')
    if number and not string.find(body, '"_data_id"', 1, true) then
      local code = string.match(body, '"_access_code":"([^"]+)"')
      local match = "_access_number=" .. number .. (code and ("&_access_code=" .. code) or "")
      queue[#queue + 1] = wrk.format("POST", "/genesys/1/service/match-interaction", form, match)
    end
    return
  end
  local id = string.match(body, '"_?id":"([^"]+)"')
  if not id then
    return
  end
  local at = stage[id]
  if kind == "storage" then
    if at == nil then
      push("POST", "/genesys/1/storage/" .. id .. "/60", "more=b", "changed", id)
    elseif at == "changed" then
      push("DELETE", "/genesys/1/storage/" .. id, nil, "deleted", id)
    else
      stage[id] = nil
    end
  else
    if at == nil then
      push("DELETE", "/genesys/1/service/" .. id, nil, "deleted", id)
    else
      stage[id] = nil
    end
  end
end

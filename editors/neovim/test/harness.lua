-- What the Neovim drivers (ghost_text.lua, record_trace.lua) share: the report written to QS_OUT as JSON, calls into
-- the child `nvim --embed` they drive (H.child, set once started), waiting, and the exit code (0, or 1 after
-- writing {"error": ...}). Loaded with dofile() from the driver's own folder.
local H = { report = { steps = {} }, child = nil }

local function finish(code)
  local file = assert(io.open(os.getenv("QS_OUT"), "w"))
  file:write(vim.fn.json_encode(H.report))
  file:close()
  if H.child then
    pcall(vim.rpcnotify, H.child, "nvim_command", "qall!")
    vim.fn.jobwait({ H.child }, 10000)
  end
  vim.cmd((code == 0) and "qall!" or "cquit 1")
end

--- Run Lua in the child and return its value (nil for nil: it crosses RPC as vim.NIL, which is truthy).
function H.lua(code, ...)
  local value = vim.rpcrequest(H.child, "nvim_exec_lua", code, { ... })
  if value == vim.NIL then
    return nil
  end
  return value
end

function H.step(name)
  table.insert(H.report.steps, name)
end

function H.wait_for(what, timeout_ms, check)
  local value
  local ok = vim.wait(timeout_ms, function()
    value = check()
    return value ~= nil and value ~= false
  end, 50)
  assert(ok, "timed out waiting for " .. what)
  return value
end

--- Run the driver, write the report and exit.
function H.main(run)
  local ok, err = pcall(run)
  if not ok then
    H.report.error = tostring(err)
    finish(1)
  else
    finish(0)
  end
end

return H

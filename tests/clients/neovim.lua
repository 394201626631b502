-- Neovim (0.7, Debian's) as a real client: its built-in LSP client starts the server, syncs the buffer
-- (incrementally, as the user edits) and asks for completions with buf_request_sync.
--
-- Run headless:  QS_CMD='["python","-m","lsp_server"]' QS_FILE=x.py QS_LINE=4 QS_CHARACTER=54 QS_OUT=out.json \
--                nvim --headless --clean -c 'luafile tests/clients/neovim.lua'
-- Writes one JSON object to QS_OUT and quits with 0, or with 1 after writing {"error": ...}.

local out_path = os.getenv("QS_OUT")
local report = {}

local function finish(code)
  local file = io.open(out_path, "w")
  file:write(vim.fn.json_encode(report))
  file:close()
  vim.cmd((code == 0) and "qall!" or "cquit 1")
end

local function request(bufnr, method, params)
  local responses, err = vim.lsp.buf_request_sync(bufnr, method, params, 120000)
  assert(responses, method .. " got no response: " .. tostring(err))
  for _, response in pairs(responses) do
    assert(not response.err, method .. " failed: " .. vim.inspect(response.err))
    return response.result
  end
  error(method .. ": no client answered")
end

local function run()
  local cmd = vim.fn.json_decode(os.getenv("QS_CMD"))
  local path = os.getenv("QS_FILE")
  local line, character = tonumber(os.getenv("QS_LINE")), tonumber(os.getenv("QS_CHARACTER"))

  vim.cmd("edit " .. vim.fn.fnameescape(path))
  local bufnr = vim.api.nvim_get_current_buf()
  vim.bo[bufnr].filetype = "python"

  local client_id = vim.lsp.start_client({
    name = "quicksilver",
    cmd = cmd,
    root_dir = vim.fn.fnamemodify(path, ":p:h"),
    init_options = { logLevel = "info" },
    flags = { debounce_text_changes = 0 },
  })
  assert(client_id, "start_client failed")
  vim.lsp.buf_attach_client(bufnr, client_id)
  assert(vim.wait(60000, function()
    local client = vim.lsp.get_client_by_id(client_id)
    return client ~= nil and client.initialized
  end, 50), "the server did not initialize")
  report.offset_encoding = vim.lsp.get_client_by_id(client_id).offset_encoding

  local uri = vim.uri_from_bufnr(bufnr)
  local position = { line = line, character = character }
  local completion = request(bufnr, "textDocument/completion", { textDocument = { uri = uri }, position = position })
  report.completion = completion.items or completion
  report.inline = request(bufnr, "textDocument/inlineCompletion", {
    textDocument = { uri = uri }, position = position, context = { triggerKind = 1 },
  }).items

  -- The user types: Neovim sends an incremental didChange, then we ask after the typed text.
  vim.api.nvim_buf_set_text(bufnr, line, character, line, character, { " and" })
  local after = { line = line, character = character + 4 }
  report.after_typing = request(bufnr, "textDocument/inlineCompletion", {
    textDocument = { uri = uri }, position = after, context = { triggerKind = 1 },
  }).items
  report.sync_kind = vim.lsp.get_client_by_id(client_id).server_capabilities.textDocumentSync.change

  vim.lsp.stop_client(client_id)
  report.stopped = vim.wait(30000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
end

local ok, err = pcall(run)
if not ok then
  report.error = tostring(err)
  finish(1)
else
  finish(0)
end

-- Ghost text: one suggestion per buffer, drawn with an extmark (virt_text for the first line, virt_lines for the
-- rest), plus the position arithmetic between Neovim's byte columns and LSP's UTF-16/UTF-8/UTF-32 units.
-- Works on Neovim 0.7 (no inline virtual text there: at mid-line the suggestion and the rest of the line are
-- drawn over the line, which looks the same) and uses `virt_text_pos = "inline"` where it exists (0.10+).
local M = {}

M.namespace = vim.api.nvim_create_namespace("quicksilver")
M.highlight = "QuicksilverGhost"
vim.cmd("highlight default link QuicksilverGhost Comment")

local has_inline_virt_text = vim.fn.has("nvim-0.10") == 1

-- Code units of one UTF-8 sequence starting with `byte`: (bytes, utf-16 units).
local function sequence(byte)
  if byte < 0x80 then
    return 1, 1
  elseif byte >= 0xF0 then
    return 4, 2 -- outside the BMP: a surrogate pair in UTF-16
  elseif byte >= 0xE0 then
    return 3, 1
  elseif byte >= 0xC0 then
    return 2, 1
  end
  return 1, 1 -- a stray continuation byte counts as one unit, as Neovim shows it
end

--- LSP character offset of byte column `col` (0-based) in `line`.
function M.units_from_byte(line, col, encoding)
  if encoding == "utf-8" then
    return math.min(col, #line)
  end
  local units, i = 0, 1
  while i <= math.min(col, #line) do
    local bytes, utf16 = sequence(line:byte(i))
    units = units + ((encoding == "utf-32") and 1 or utf16)
    i = i + bytes
  end
  return units
end

--- Byte column (0-based) of LSP character offset `units` in `line`; past the end clamps to the end.
function M.byte_from_units(line, units, encoding)
  if encoding == "utf-8" then
    return math.min(units, #line)
  end
  local seen, i = 0, 1
  while i <= #line and seen < units do
    local bytes, utf16 = sequence(line:byte(i))
    seen = seen + ((encoding == "utf-32") and 1 or utf16)
    i = i + bytes
  end
  return i - 1
end

--- The lines of `text` (LSP newlines are "\n"; a "\r\n" suggestion is split the same way).
function M.split_lines(text)
  return vim.split(text:gsub("\r\n", "\n"), "\n", { plain = true })
end

--- Where the cursor lands after inserting `lines` at (row, col): the end of the inserted text.
function M.end_of_insert(row, col, lines)
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

--- The extmark options that draw `lines` as ghost text at byte column `col` of `line`.
function M.extmark_opts(line, col, lines)
  local first = lines[1]
  local opts = { hl_mode = "combine", priority = 1000 }
  if has_inline_virt_text then
    opts.virt_text = { { first, M.highlight } }
    opts.virt_text_pos = "inline"
  else
    -- Draw the suggestion, then the rest of the line, over the line from the cursor on: the real characters
    -- are hidden under it, so it reads as if the text were inserted.
    local rest = line:sub(col + 1)
    opts.virt_text = { { first, M.highlight } }
    if rest ~= "" then
      table.insert(opts.virt_text, { rest, "Normal" })
    end
    opts.virt_text_pos = "overlay"
  end
  if #lines > 1 then
    opts.virt_lines = {}
    for i = 2, #lines do
      table.insert(opts.virt_lines, { { lines[i], M.highlight } })
    end
  end
  return opts
end

--- Draw `text` at (row, col) in `bufnr`; returns the extmark id.
function M.show(bufnr, row, col, text)
  M.clear(bufnr)
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ""
  return vim.api.nvim_buf_set_extmark(bufnr, M.namespace, row, math.min(col, #line),
    M.extmark_opts(line, col, M.split_lines(text)))
end

function M.clear(bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, M.namespace, 0, -1)
  end
end

--- The ghost-text extmarks of `bufnr`, with details (for tests and :QuicksilverStatus).
function M.extmarks(bufnr)
  return vim.api.nvim_buf_get_extmarks(bufnr, M.namespace, 0, -1, { details = true })
end

return M

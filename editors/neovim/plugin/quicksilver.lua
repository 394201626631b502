-- Commands only; nothing starts until require("quicksilver").setup() (see editors/neovim/README.md).
if vim.g.loaded_quicksilver then
  return
end
vim.g.loaded_quicksilver = true

local function command(name, fn, desc)
  vim.api.nvim_create_user_command(name, fn, { desc = desc })
end

command("QuicksilverStart", function() require("quicksilver").setup(require("quicksilver").config) end,
  "Start Quicksilver and attach the current buffer")
command("QuicksilverStop", function() require("quicksilver").stop() end, "Stop the Quicksilver server")
command("QuicksilverSuggest", function() require("quicksilver").request(false) end, "Ask for a suggestion now")
command("QuicksilverAccept", function() require("quicksilver").accept() end, "Insert the suggestion shown")
command("QuicksilverDismiss", function() require("quicksilver").dismiss(nil, true) end, "Hide the suggestion shown")
command("QuicksilverStatus", function() print(require("quicksilver").status()) end, "Server and suggestion state")
command("QuicksilverLog", function()
  local log_file = require("quicksilver").config.log_file or vim.lsp.get_log_path()
  vim.cmd("edit " .. vim.fn.fnameescape(log_file))
end, "Open the server's log")

//! The interactive shell of `flotilla sql`: line editing, history, multi-line statements ended
//! by `;`, and a few backslash commands.

use crate::output::OutputFormat;
use crate::run::run_sql;
use datafusion::execution::context::SessionContext;
use flotilla_common::Result;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;
use std::path::PathBuf;

const HELP: &str = "\
Statements end with ';' and may span lines.
  \\d            list tables (catalog.schema.table)
  \\d NAME       describe a table
  \\format F     output as table, csv, json or ndjson
  \\refresh [S]  re-read the tables and columns of source S (default: all)
  \\q            quit (or Ctrl-D)
  \\?            this help
Ctrl-C clears the statement being typed.";

/// Where the history is kept: `$FLOTILLA_HISTORY`, else `~/.flotilla_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FLOTILLA_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".flotilla_history"))
}

/// Runs the shell until the user quits.
pub async fn run(ctx: &SessionContext, mut format: OutputFormat) -> Result<()> {
    let mut editor = DefaultEditor::new().map_err(|e| {
        flotilla_common::Error::internal(format!("cannot start the line editor: {e}"))
    })?;
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "Flotilla {} — type \\? for help, \\q to quit.",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "flotilla> "
        } else {
            "       -> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("error: {e}");
                break;
            }
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            match command(ctx, trimmed, &mut format).await {
                Command::Quit => break,
                Command::Continue => continue,
            }
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if !buffer.trim_end().ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = run_sql(ctx, &buffer, format, &mut stdout, false).await {
            eprintln!("error: {e}");
        }
        buffer.clear();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

enum Command {
    Quit,
    Continue,
}

async fn command(ctx: &SessionContext, line: &str, format: &mut OutputFormat) -> Command {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or("");
    let argument = words.next();
    let sql = match (name, argument) {
        ("\\q", _) => return Command::Quit,
        ("\\?" | "\\h", _) => {
            eprintln!("{HELP}");
            return Command::Continue;
        }
        ("\\format", Some(f)) => {
            match <OutputFormat as clap::ValueEnum>::from_str(f, true) {
                Ok(f) => *format = f,
                Err(_) => eprintln!("error: unknown format '{f}' (table, csv, json, ndjson)"),
            }
            return Command::Continue;
        }
        ("\\refresh", source) => {
            match crate::context::refresh(ctx, source).await {
                Ok(names) if names.is_empty() => match source {
                    Some(source) => eprintln!("error: no database source named '{source}'"),
                    None => eprintln!("no database sources to refresh"),
                },
                Ok(names) => eprintln!("refreshed {}", names.join(", ")),
                Err(e) => eprintln!("error: {e}"),
            }
            return Command::Continue;
        }
        ("\\d", None) => "SELECT table_catalog, table_schema, table_name, table_type \
                          FROM information_schema.tables \
                          WHERE table_schema <> 'information_schema' \
                          ORDER BY 1, 2, 3"
            .to_string(),
        ("\\d", Some(table)) => format!("DESCRIBE {table}"),
        _ => {
            eprintln!("error: unknown command '{line}' (\\? lists the commands)");
            return Command::Continue;
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = run_sql(ctx, &sql, *format, &mut stdout, false).await {
        eprintln!("error: {e}");
    }
    Command::Continue
}

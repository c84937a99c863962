use super::*;

fn one(text: &str) -> Kind {
    let f = parse(&format!("FROM scratch\n{text}\n"), "Containerfile").unwrap();
    f.stages[0].steps[0].kind.clone()
}

fn bad(text: &str) -> ParseError {
    parse(text, "Containerfile").unwrap_err()
}

#[test]
fn stages_args_and_aliases() {
    let f = parse(
        "ARG BASE=busybox\nFROM $BASE AS build\nRUN make\n\nfrom --platform=linux/amd64 scratch\nCOPY --from=build /out /out\n",
        "Containerfile",
    )
    .unwrap();
    assert_eq!(f.args.len(), 1);
    assert_eq!(f.stages.len(), 2);
    assert_eq!(f.stages[0].alias(), Some("build"));
    assert_eq!(
        f.stages[1].from.kind,
        Kind::From {
            image: "scratch".into(),
            alias: None,
            platform: Some("linux/amd64".into())
        }
    );
    assert_eq!(f.stages[1].steps[0].line, 6);
    match &f.stages[1].steps[0].kind {
        Kind::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("build"));
            assert_eq!(c.sources, vec!["/out"]);
            assert_eq!(c.dest, "/out");
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn exec_form_falls_back_to_shell_form() {
    assert_eq!(
        one(r#"CMD ["echo", "hi"]"#),
        Kind::Cmd(Command::Exec(vec!["echo".into(), "hi".into()]))
    );
    // Not valid JSON: Docker runs it with the shell.
    assert_eq!(
        one("CMD [echo, hi]"),
        Kind::Cmd(Command::Shell("[echo, hi]".into()))
    );
    assert_eq!(
        one("ENTRYPOINT ['single']"),
        Kind::Entrypoint(Command::Shell("['single']".into()))
    );
}

#[test]
fn continuations_comments_and_the_escape_directive() {
    let k = one("RUN echo a \\\n# a comment inside\n\n  && echo b");
    assert_eq!(
        k,
        Kind::Run {
            command: Command::Shell("echo a   && echo b".into()),
            heredocs: vec![],
            network: None
        }
    );
    let f = parse(
        "# escape=`\nFROM scratch\nRUN dir C:\\ `\n  && echo x\n",
        "Containerfile",
    )
    .unwrap();
    assert_eq!(f.escape, '`');
    match &f.stages[0].steps[0].kind {
        Kind::Run { command, .. } => {
            assert_eq!(command, &Command::Shell("dir C:\\   && echo x".into()))
        }
        k => panic!("{k:?}"),
    }
    // A directive after a comment is only a comment.
    let g = parse("# hello\n# escape=`\nFROM scratch\n", "Containerfile").unwrap();
    assert_eq!(g.escape, '\\');
}

#[test]
fn heredocs_take_the_lines_after() {
    let f = parse(
        "FROM scratch\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-\"X\" /f\n\tbody $A\n\tX\nENV A=1\n",
        "Containerfile",
    )
    .unwrap();
    let s = &f.stages[0].steps;
    assert_eq!(s.len(), 3);
    match &s[0].kind {
        Kind::Run { heredocs, .. } => {
            assert_eq!(heredocs[0].body, "echo one\necho two\n");
            assert!(heredocs[0].expand);
        }
        k => panic!("{k:?}"),
    }
    match &s[1].kind {
        Kind::Copy(c) => {
            assert_eq!(c.heredocs[0].name, "X");
            assert_eq!(c.heredocs[0].body, "body $A\n");
            assert!(!c.heredocs[0].expand);
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(s[2].line, 9);
    let e = bad("FROM scratch\nRUN <<EOF\necho\n");
    assert!(e.reason.contains("no closing line EOF"), "{e}");
}

#[test]
fn env_label_and_arg_pairs() {
    assert_eq!(
        one(r#"ENV A=1 B="two words" C=x\ y"#),
        Kind::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "x\\ y".into())
        ])
    );
    assert_eq!(
        one("ENV OLD the rest of it"),
        Kind::Env(vec![("OLD".into(), "the rest of it".into())])
    );
    assert_eq!(
        one("ARG A B=2"),
        Kind::Arg(vec![("A".into(), None), ("B".into(), Some("2".into()))])
    );
    assert_eq!(
        one("LABEL \"com.x\"=y"),
        Kind::Label(vec![("\"com.x\"".into(), "y".into())])
    );
}

#[test]
fn healthcheck_and_onbuild() {
    assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(Health::None));
    assert_eq!(
        one("HEALTHCHECK --interval=5s --retries=3 CMD test -f /ok"),
        Kind::Healthcheck(Health::Check {
            command: Command::Shell("test -f /ok".into()),
            options: vec![
                ("interval".into(), "5s".into()),
                ("retries".into(), "3".into())
            ]
        })
    );
    assert_eq!(
        one("ONBUILD RUN echo hi"),
        Kind::Onbuild("RUN echo hi".into())
    );
    assert!(bad("FROM scratch\nONBUILD FROM x\n")
        .reason
        .contains("not allowed"));
    assert!(bad("FROM scratch\nONBUILD BOGUS x\n")
        .reason
        .contains("unknown instruction"));
}

#[test]
fn bad_input_names_the_file_line_and_instruction() {
    let e = bad("FROM scratch\n\nFROBNICATE now\n");
    assert_eq!((e.line, e.instruction.as_str()), (3, "FROBNICATE"));
    assert_eq!(
        e.to_string(),
        "Containerfile:3: FROBNICATE: unknown instruction FROBNICATE"
    );
    assert!(bad("RUN echo\n").reason.contains("before the first FROM"));
    assert!(bad("# nothing\n").reason.contains("no FROM"));
    assert!(bad("FROM a AS x\nFROM b AS X\n")
        .reason
        .contains("used twice"));
    assert!(bad("FROM a AS 1x\n").reason.contains("invalid stage name"));
    assert!(bad("FROM scratch\nCOPY onlyone\n")
        .reason
        .contains("SOURCE"));
    assert!(bad("FROM scratch\nCOPY --bogus=1 a b\n")
        .reason
        .contains("unknown flag --bogus"));
    assert!(bad("FROM scratch\nSHELL sh -c\n").reason.contains("JSON"));
    assert!(bad("# escape=x\nFROM scratch\n").reason.contains("escape"));
    assert!(bad("FROM scratch\nRUN --mount=type=cache,target=/x true\n")
        .reason
        .contains("not supported"));
}

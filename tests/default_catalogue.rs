//! The quality of the embedded default catalogue (`prompts/routes.toml`): `eval` on the labelled
//! AWS operations questions in data/awsops/dev.jsonl (whole file, the part the catalogue was tuned
//! on, and the part held out of tuning), the issue's examples, and questions in other languages.
//!
//! The split is fixed here so the figures can be reproduced: a question is *held out* when the
//! 64-bit FNV-1a hash of its text (UTF-8 bytes, as written in the file) is 0, 1 or 2 modulo 10;
//! that keeps 134 of the 500 questions out of tuning. Only the tuning part's confusions were
//! read while the catalogue was edited.

use std::path::PathBuf;

use agent_router::Catalogue;
use agent_router::routing::{FastOutcome, FastPath};
use agent_router::tune::{EvalOptions, EvalReport, Example, evaluate, load_examples};

fn dev() -> Vec<Example> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/awsops/dev.jsonl"
    ));
    load_examples(&path).expect("data/awsops/dev.jsonl")
}

/// 64-bit FNV-1a.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Whether a question was held out of tuning (see the module comment).
fn held_out(e: &Example) -> bool {
    fnv1a(&e.query) % 10 < 3
}

fn eval(examples: &[Example]) -> EvalReport {
    let catalogue = Catalogue::embedded_default().expect("embedded catalogue");
    evaluate(&catalogue, examples, &EvalOptions::default()).expect("eval")
}

/// Figures a part of dev.jsonl must reach (measured values, less about one question's worth).
struct Floor {
    part: &'static str,
    queries: usize,
    coverage: f64,
    precision: f64,
    /// Lowest per-agent precision.
    agent_precision: f64,
}

fn check(r: &EvalReport, floor: &Floor) {
    let per_agent: Vec<String> = r
        .per_agent
        .iter()
        .map(|(name, s)| format!("{name} {:.3}", s.precision))
        .collect();
    let figures = format!(
        "{}: {} queries, coverage {:.4}, precision {:.4}, per agent [{}]",
        floor.part,
        r.queries,
        r.coverage,
        r.precision,
        per_agent.join(", ")
    );
    assert_eq!(r.queries, floor.queries, "{figures}");
    assert!(r.coverage >= floor.coverage, "{figures}");
    assert!(r.precision >= floor.precision, "{figures}");
    for (name, s) in &r.per_agent {
        assert!(
            s.decided > 0 && s.precision >= floor.agent_precision,
            "{name}: {figures}"
        );
    }
}

/// Measured: whole file coverage 82.2 %, precision 98.8 % (406 of 411); tuning part 85.2 %,
/// 99.7 % (311 of 312); held-out part 73.9 %, 96.0 % (95 of 99). Earlier catalogues: 81.8 %,
/// 98.5 % and 80.6 %, 98.5 % on the whole file (held-out part 73.9 %, 94.9 % and 70.1 %, 94.7 %).
/// Before the first hand-written catalogue: 64.6 %, 87.6 % on the whole file (60.4 %, 87.7 % on
/// the held-out part).
#[test]
fn dev_figures_whole_tuning_and_held_out() {
    let all = dev();
    let (held, tuning): (Vec<Example>, Vec<Example>) = all.iter().cloned().partition(held_out);
    check(
        &eval(&all),
        &Floor {
            part: "dev.jsonl",
            queries: 500,
            coverage: 0.81,
            precision: 0.984,
            agent_precision: 0.97,
        },
    );
    check(
        &eval(&tuning),
        &Floor {
            part: "tuning part",
            queries: 366,
            coverage: 0.845,
            precision: 0.99,
            agent_precision: 0.98,
        },
    );
    check(
        &eval(&held),
        &Floor {
            part: "held-out part",
            queries: 134,
            coverage: 0.73,
            precision: 0.945,
            agent_precision: 0.88,
        },
    );
}

/// Questions written for this project from other points of view than dev.jsonl's (data and ML
/// engineers, a security auditor, a finance manager, a platform lead, a student, a support
/// engineer, game-studio operations; terse, misspelt and non-English messages), over AWS services
/// dev.jsonl mostly does not name. Written before the catalogue was measured on them and never
/// used to choose keywords: an estimate of how the catalogue does on other people's questions.
/// Measured: coverage 82.7 %, precision 100 % (124 of 124); earlier catalogues: 82.0 %,
/// 99.2 % (122 of 123) and 68.0 %, 99.0 % (101 of 102).
#[test]
fn extra_figures() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/awsops/extra.jsonl"
    ));
    let extra = load_examples(&path).expect("data/awsops/extra.jsonl");
    check(
        &eval(&extra),
        &Floor {
            part: "extra.jsonl",
            queries: 150,
            coverage: 0.81,
            precision: 0.99,
            agent_precision: 0.97,
        },
    );
}

/// Questions from eight more authors and many more points of view (data/awsops/README.md). Their
/// misses were read while the catalogue was edited, so this is tuning data, not an estimate: it
/// keeps what was learnt from them. Measured: coverage 79.8 %, precision 98.9 % (1,339 of
/// 1,354).
#[test]
fn more_figures() {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/awsops/more.jsonl"
    ));
    let more = load_examples(&path).expect("data/awsops/more.jsonl");
    check(
        &eval(&more),
        &Floor {
            part: "more.jsonl",
            queries: 1697,
            coverage: 0.77,
            precision: 0.985,
            agent_precision: 0.96,
        },
    );
}

fn fast_path() -> FastPath {
    FastPath::new(&Catalogue::embedded_default().expect("embedded catalogue")).expect("fast path")
}

/// What a query must get from the fast path.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Decided for this agent.
    Fast(&'static str),
    /// Left to the LLM; a fast decision for this agent would be right too, any other is wrong.
    Llm(&'static str),
}

fn check_table(table: &[(&str, Want)]) {
    let fast = fast_path();
    let catalogue = Catalogue::embedded_default().unwrap();
    let name = |i: usize| catalogue.agents()[i].name.as_str();
    for &(query, want) in table {
        let got = match fast.decide(query) {
            FastOutcome::Decided { agent, .. } => Some(name(agent)),
            FastOutcome::Unrouted { .. } => None,
        };
        match want {
            Want::Fast(agent) => assert_eq!(got, Some(agent), "{query:?}"),
            Want::Llm(agent) => assert!(
                got.is_none_or(|g| g == agent),
                "{query:?}: decided {got:?}, want {agent} or the LLM"
            ),
        }
    }
}

/// The examples of the issue that asked for this catalogue: right, or left to the LLM.
#[test]
fn issue_examples() {
    use Want::*;
    check_table(&[
        (
            "is the RDS instance I made reachable from the internet?",
            Fast("security"),
        ),
        // Money as the subject ("paying for X", "the cost of X") outweighs a service and an
        // intent word of another agent together.
        (
            "how much are we paying for CloudWatch custom metrics?",
            Fast("cost"),
        ),
        (
            "what is the cost of our CloudWatch alarms this month",
            Fast("cost"),
        ),
        // Two of monitoring's words against it: a tie, and the LLM decides.
        (
            "Wie hoch sind unsere Kosten für CloudWatch-Alarme?",
            Llm("cost"),
        ),
        ("What's an availability zone?", Fast("general")),
        ("How much are CloudWatch logs costing us?", Fast("cost")),
        ("Are any of my S3 buckets public?", Fast("security")),
        (
            "CPU utilization on my RDS database is high",
            Fast("monitoring"),
        ),
        (
            "Which lambda functions timed out today?",
            Fast("monitoring"),
        ),
        // The labelling rules' cross-domain cases.
        ("What does GuardDuty cost us per month?", Fast("cost")),
        ("Which EBS volumes are not encrypted?", Fast("security")),
        ("How many IAM users do we have?", Fast("security")),
        ("list every IAM role in the account", Fast("security")),
        (
            "Our Cost Explorer export Lambda keeps timing out",
            Fast("monitoring"),
        ),
        (
            "Set up a budget alert for the sandbox account",
            Fast("cost"),
        ),
        (
            "Which resources are missing the cost-center tag?",
            Fast("resources"),
        ),
        ("Find unattached EBS volumes", Fast("resources")),
        ("any failed console logins this week?", Fast("security")),
        (
            "what's the difference between SQS and SNS?",
            Fast("general"),
        ),
        // Two intents of the same strength: the LLM decides.
        (
            "Are there errors in the Lambda that sends budget alerts?",
            Llm("monitoring"),
        ),
        (
            "Who is able to delete our CloudWatch alarms?",
            Llm("security"),
        ),
        // Unused and outdated things, drift, and the other AWS services' names.
        (
            "Any zombie EBS volumes left over from the migration?",
            Fast("resources"),
        ),
        (
            "Has the network stack drifted from its template?",
            Fast("resources"),
        ),
        (
            "Which Neptune clusters are on an end-of-life engine version?",
            Fast("resources"),
        ),
        (
            "Which Kafka topics exist on the MSK cluster?",
            Fast("resources"),
        ),
        // CloudTrail "who did X", and signing in is not logs.
        ("Who revoked the deploy role's access?", Fast("security")),
        (
            "someone logs into the console as root every night",
            Fast("security"),
        ),
        (
            "Any failed MFA attempts on the admin accounts?",
            Fast("security"),
        ),
        // A breach of an SLA is a failure; rate limiting is throttling.
        (
            "What caused the SLA breach on the checkout API?",
            Fast("monitoring"),
        ),
        (
            "The Step Functions workflow keeps getting rate limited",
            Fast("monitoring"),
        ),
        // Money wins over a monitoring tool; rightsizing is money.
        (
            "How much does Managed Grafana cost per workspace?",
            Fast("cost"),
        ),
        (
            "Which instances are underutilized enough to downsize?",
            Fast("cost"),
        ),
        // A greeting does not outweigh an access question, but money outweighs a greeting.
        ("hello, which buckets are public?", Llm("security")),
        ("hey, what did we spend on Athena last month?", Fast("cost")),
        // Settings and actions, not failures or exposure: the LLM decides.
        ("Are VPC flow logs turned on everywhere?", Llm("security")),
        (
            "What's the Lambda timeout setting for the exporter?",
            Llm("resources"),
        ),
        ("Scale down the batch cluster tonight", Llm("resources")),
        // IAM's objects are security's even in an inventory question.
        ("how many IAM users do we have", Fast("security")),
        (
            "list the IAM roles in the sandbox account",
            Fast("security"),
        ),
        // Failures said as phrases or as the SDK's error codes; KMS's Decrypt is an API call.
        (
            "CloudTrail logs stopped arriving in the audit bucket",
            Fast("monitoring"),
        ),
        (
            "getting ThrottlingException from DynamoDB since noon",
            Fast("monitoring"),
        ),
        (
            "ThrottlingException from KMS Decrypt calls in the payments service",
            Llm("monitoring"),
        ),
        // A breakdown is not a failure; a concept question draws against the term it explains.
        ("EC2 spend broken down by team for October", Fast("cost")),
        ("Explain what a CIDR block is", Llm("general")),
        (
            "what's the difference between GuardDuty and Inspector?",
            Llm("general"),
        ),
        // What is running is inventory; a product that is not AWS is not the account.
        ("what's running in eu-west-1?", Fast("resources")),
        ("How do I reset my Gmail password?", Llm("general")),
        // Everyday phrases are not the account; a setting named after monitoring is a setting.
        ("What should go on my bucket list?", Fast("general")),
        ("How do I make a household budget?", Fast("general")),
        // A word's meaning asked for is a concept question; a request rate is a metric.
        (
            "What does 'blast radius' mean in cloud architecture?",
            Llm("general"),
        ),
        (
            "What was the peak request rate on CloudFront during exam week?",
            Fast("monitoring"),
        ),
        (
            "Which EC2 instances have detailed monitoring turned on?",
            Fast("resources"),
        ),
        // Exposure said as reach from outside, even where a money word is in the question.
        (
            "Is the bucket with our invoices accessible from outside the account?",
            Llm("security"),
        ),
    ]);
}

/// Questions in the major languages of AWS's users other than English (written for this test,
/// not taken from dev.jsonl): the core intents of the four agents are routed, and an English
/// service name inside a foreign sentence never wins against the foreign intent word.
#[test]
fn other_languages() {
    use Want::*;
    check_table(&[
        // Spanish
        ("¿Cuánto nos costó EC2 el mes pasado?", Fast("cost")),
        (
            "¿Cuál es el presupuesto de la cuenta de desarrollo?",
            Fast("cost"),
        ),
        ("¿Qué buckets de S3 son públicos?", Fast("security")),
        ("¿Están cifrados los volúmenes EBS?", Fast("security")),
        ("¿Hay alarmas activas en CloudWatch?", Fast("monitoring")),
        ("¿Por qué la API está tan lenta hoy?", Fast("monitoring")),
        (
            "Lista todas las instancias EC2 en eu-west-1",
            Fast("resources"),
        ),
        ("¿Qué recursos no utilizados tenemos?", Fast("resources")),
        ("¿Cuánto cuestan los logs de CloudWatch?", Llm("cost")),
        ("¿Quién puede ver la facturación?", Llm("security")),
        // German
        (
            "Wie hoch sind unsere AWS-Kosten diesen Monat?",
            Fast("cost"),
        ),
        ("Was kostet uns GuardDuty?", Fast("cost")),
        (
            "Welche S3-Buckets sind öffentlich zugänglich?",
            Fast("security"),
        ),
        (
            "Wer hat Zugriff auf das Produktionskonto?",
            Fast("security"),
        ),
        (
            "Gibt es Fehler in den Lambda-Logs seit dem Deployment?",
            Fast("monitoring"),
        ),
        (
            "Welche CloudWatch-Alarme sind gerade ausgelöst?",
            Fast("monitoring"),
        ),
        ("Liste alle ungenutzten EBS-Volumes auf", Fast("resources")),
        // "Tag" is a day here, not a tag.
        ("Wie viele Fehler gab es am letzten Tag?", Llm("monitoring")),
        ("Wie sind die Zahlen für Lambda heute?", Llm("monitoring")),
        // French
        (
            "Combien coûte notre compte de production ce mois-ci ?",
            Fast("cost"),
        ),
        ("Quelles sont nos dépenses RDS ?", Fast("cost")),
        ("Quels buckets S3 sont publics ?", Fast("security")),
        ("Les snapshots RDS sont-ils chiffrés ?", Fast("security")),
        (
            "Pourquoi la latence de l'API est-elle si élevée ?",
            Fast("monitoring"),
        ),
        (
            "Y a-t-il des alertes CloudWatch en cours ?",
            Fast("monitoring"),
        ),
        (
            "Quelles ressources sont inutilisées dans le compte de test ?",
            Fast("resources"),
        ),
        // "charge" is a load in French, not a charge.
        (
            "Pourquoi la charge CPU est-elle si élevée ?",
            Fast("monitoring"),
        ),
        ("Merci de lister les instances EC2", Fast("resources")),
        // Portuguese
        (
            "Quanto custa o nosso ambiente de staging por mês?",
            Fast("cost"),
        ),
        ("Qual foi o gasto com S3 no último trimestre?", Fast("cost")),
        (
            "Quais buckets do S3 estão com acesso público?",
            Fast("security"),
        ),
        (
            "Os bancos de dados RDS estão criptografados?",
            Fast("security"),
        ),
        ("Por que a API está com latência alta?", Fast("monitoring")),
        (
            "Há algum alarme disparado no CloudWatch?",
            Fast("monitoring"),
        ),
        (
            "Quantas instâncias EC2 estão em execução?",
            Fast("resources"),
        ),
        // Italian
        (
            "Quanto costa il nostro account di produzione questo mese?",
            Fast("cost"),
        ),
        ("Quali sono le spese per CloudWatch?", Fast("cost")),
        ("Quali bucket S3 sono pubblici?", Fast("security")),
        (
            "Chi ha i permessi di amministratore sull'account?",
            Fast("security"),
        ),
        (
            "Ci sono errori nei log della funzione Lambda?",
            Fast("monitoring"),
        ),
        (
            "Perché la latenza dell'API è così alta?",
            Fast("monitoring"),
        ),
        (
            "Elenca tutte le istanze EC2 in esecuzione",
            Fast("resources"),
        ),
        // Japanese
        ("先月のAWSのコストはいくらでしたか？", Fast("cost")),
        ("CloudWatch Logsの料金を教えて", Fast("cost")),
        ("公開されているS3バケットはありますか？", Fast("security")),
        ("IAMユーザーの権限を確認したい", Fast("security")),
        ("本番環境でアラームが発生していますか？", Fast("monitoring")),
        ("Lambda関数のエラーが増えています", Fast("monitoring")),
        ("EC2インスタンスの一覧を見せて", Fast("resources")),
        ("未使用のEBSボリュームはありますか？", Fast("resources")),
        // "ログ" (log) is inside "ログイン" (login): a failed login is security.
        ("コンソールへのログイン失敗を調べて", Fast("security")),
        // Who did it, failures, money and unused things, in each language.
        ("¿Quién borró el bucket de S3?", Fast("security")),
        (
            "¿Por qué fallaron los despliegues de anoche?",
            Fast("monitoring"),
        ),
        // "yo" is "I" in Spanish, not a greeting.
        (
            "Yo quiero saber quién tiene acceso al bucket",
            Fast("security"),
        ),
        ("Wer hat die Sicherheitsgruppe gelöscht?", Fast("security")),
        ("Die Datenbank ist überlastet", Fast("monitoring")),
        ("Welche Volumes werden nicht genutzt?", Fast("resources")),
        ("Nous dépensons trop sur EMR ce trimestre", Fast("cost")),
        (
            "La base de données ne répond pas et l'application plante",
            Fast("monitoring"),
        ),
        // "surcharge" is an overload in French but a fee in English: only "surchargé" counts.
        (
            "Le serveur est surchargé depuis ce matin",
            Fast("monitoring"),
        ),
        (
            "Is there a surcharge for cross-region replication?",
            Llm("cost"),
        ),
        ("Quem apagou a instância de produção?", Fast("security")),
        ("O deploy falhou de novo", Fast("monitoring")),
        (
            "Chi ha modificato il gruppo di sicurezza?",
            Fast("security"),
        ),
        ("Quanto ci è costato Redshift a marzo?", Fast("cost")),
        ("アクセスキーが漏洩していないか確認して", Fast("security")),
        ("本番のAPIが落ちている", Fast("monitoring")),
        // Thanks and greetings.
        ("¡Muchas gracias!", Fast("general")),
        ("Danke schön", Fast("general")),
        ("Merci beaucoup", Fast("general")),
        ("Obrigado pela ajuda", Fast("general")),
        ("Grazie mille", Fast("general")),
        ("ありがとうございます", Fast("general")),
    ]);
}

//! SCRAM against RFC 7677's test vector, and every way a proof can be wrong.

use super::*;

const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn rfc_credential() -> ScramCredential {
    let salt = B64.decode(SALT_B64).expect("salt");
    let m = ScramMechanism::Sha256;
    m.credential(&m.salted_password(b"pencil", &salt, 4096), &salt, 4096)
}

fn rfc_server() -> (ScramServer, Vec<u8>) {
    let first = format!("n,,n=user,r={CLIENT_NONCE}");
    ScramServer::start_with_nonce(ScramMechanism::Sha256, first.as_bytes(), |u| (u == "user").then(rfc_credential), b"decoy", SERVER_NONCE.into())
        .expect("first message")
}

#[test]
fn the_server_follows_rfc_7677() {
    let (server, server_first) = rfc_server();
    assert_eq!(String::from_utf8(server_first).expect("utf8"), format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT_B64},i=4096"));
    let (user, server_final) = server.finish(CLIENT_FINAL.as_bytes()).expect("the RFC's proof");
    assert_eq!((user.as_str(), String::from_utf8(server_final).expect("utf8").as_str()), ("user", SERVER_FINAL));
}

#[test]
fn the_client_follows_rfc_7677() {
    let (mut client, first) = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", CLIENT_NONCE.into());
    assert_eq!(first, format!("n,,n=user,r={CLIENT_NONCE}").into_bytes());
    let server_first = format!("r={CLIENT_NONCE}{SERVER_NONCE},s={SALT_B64},i=4096");
    assert_eq!(client.respond(server_first.as_bytes()).expect("final"), CLIENT_FINAL.as_bytes());
    client.verify(SERVER_FINAL.as_bytes()).expect("the server's signature");
    assert!(client.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=").is_err(), "another signature");
    assert!(client.verify(b"e=invalid-proof").is_err());
}

#[test]
fn a_tampered_proof_is_refused() {
    let (server, _) = rfc_server();
    let tampered = CLIENT_FINAL.replace("p=dHzb", "p=dHzc");
    let e = server.finish(tampered.as_bytes()).expect_err("tampered proof");
    assert!(e.0.contains("wrong proof"), "{e:?}");
    let (server, _) = rfc_server();
    assert!(server.finish(CLIENT_FINAL.replace("p=", "p=AAAA").as_bytes()).is_err(), "a longer proof");
    let (server, _) = rfc_server();
    assert!(server.finish(CLIENT_FINAL.replace("c=biws", "c=eSws").as_bytes()).is_err(), "another GS2 header");
}

#[test]
fn a_replayed_exchange_is_refused() {
    // The same client messages against a server that chose a fresh nonce.
    let first = format!("n,,n=user,r={CLIENT_NONCE}");
    let (server, server_first) = ScramServer::start(ScramMechanism::Sha256, first.as_bytes(), |_| Some(rfc_credential()), b"decoy").expect("first message");
    assert!(!String::from_utf8_lossy(&server_first).contains(SERVER_NONCE));
    let e = server.finish(CLIENT_FINAL.as_bytes()).expect_err("replayed final message");
    assert!(e.0.contains("nonce"), "{e:?}");
}

#[test]
fn an_unknown_user_gets_a_stable_decoy_salt_and_is_refused() {
    let first = format!("n,,n=nobody,r={CLIENT_NONCE}");
    let start = || ScramServer::start(ScramMechanism::Sha256, first.as_bytes(), |_| None, b"decoy").expect("first message");
    let salt = |m: &[u8]| String::from_utf8_lossy(m).split(",s=").nth(1).map(|s| s.split(',').next().unwrap_or("").to_string());
    let (server, a) = start();
    let (_, b) = start();
    assert_eq!(salt(&a), salt(&b), "the same decoy salt each time");
    let nonce = String::from_utf8_lossy(&a).split(',').next().unwrap_or("").trim_start_matches("r=").to_string();
    let e = server.finish(format!("c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").as_bytes()).expect_err("unknown user");
    assert!(e.0.contains("unknown user"), "{e:?}");
}

#[test]
fn client_and_server_agree_for_both_mechanisms_and_odd_names() {
    for mech in ScramMechanism::ALL {
        for name in ["alice", "a,b=c", "ünï"] {
            let cred = mech.new_credential("s3cret", 4096);
            let (mut client, first) = ScramClient::start(mech, name, "s3cret");
            let (server, server_first) = ScramServer::start(mech, &first, |u| (u == name).then(|| cred.clone()), b"k").expect("first");
            let (user, server_final) = server.finish(&client.respond(&server_first).expect("respond")).expect("proof");
            assert_eq!(user, name);
            client.verify(&server_final).expect("server signature");
            assert!(cred.matches_password(mech, "s3cret") && !cred.matches_password(mech, "s3cret "));
            // A wrong password.
            let (mut client, first) = ScramClient::start(mech, name, "guess");
            let (server, server_first) = ScramServer::start(mech, &first, |_| Some(cred.clone()), b"k").expect("first");
            assert!(server.finish(&client.respond(&server_first).expect("respond")).is_err());
        }
    }
}

#[test]
fn malformed_first_messages_are_refused() {
    for msg in [
        "",
        "n,,",
        "p=tls-unique,,n=user,r=abc",
        "n,,r=abc,n=user",
        "n,,n=,r=abc",
        "n,,n=us=er,r=abc",
        "n,,m=ext,n=user,r=abc",
        "n,a=other,n=user,r=abc",
        "n,,n=user,r=abc,tokenauth=true",
    ] {
        assert!(ScramServer::start(ScramMechanism::Sha512, msg.as_bytes(), |_| Some(rfc_credential()), b"k").is_err(), "{msg:?}");
    }
    let huge = format!("n,,n=user,r={}", "x".repeat(MESSAGE_BYTES_MAX));
    assert!(ScramServer::start(ScramMechanism::Sha512, huge.as_bytes(), |_| None, b"k").is_err());
    assert!(ScramServer::start(ScramMechanism::Sha512, b"n,a=user,n=user,r=abc", |_| None, b"k").is_ok(), "authzid equal to the user");
}

#[test]
fn librdkafkas_doubled_client_nonce_is_accepted_as_kafka_accepts_it() {
    // librdkafka writes r=<client nonce><server's whole nonce>; Kafka checks only the ending.
    let m = ScramMechanism::Sha256;
    let (server, server_first) = rfc_server();
    let full = format!("{CLIENT_NONCE}{SERVER_NONCE}");
    let without_proof = format!("c=biws,r={CLIENT_NONCE}{full}");
    let auth = format!("n=user,r={CLIENT_NONCE},{},{without_proof}", String::from_utf8(server_first).expect("utf8"));
    let salt = B64.decode(SALT_B64).expect("salt");
    let salted = m.salted_password(b"pencil", &salt, 4096);
    let client_key = m.mac(&salted, b"Client Key");
    let stored = digest::digest(m.digest(), &client_key);
    let proof: Vec<u8> = client_key.iter().zip(m.mac(stored.as_ref(), auth.as_bytes())).map(|(a, b)| a ^ b).collect();
    let (user, _) = server.finish(format!("{without_proof},p={}", B64.encode(proof)).as_bytes()).expect("accepted");
    assert_eq!(user, "user");
    let (server, _) = rfc_server();
    assert!(server.finish(format!("c=biws,r={SERVER_NONCE},p=AAAA").as_bytes()).is_err(), "a nonce that is only the server's part");
}

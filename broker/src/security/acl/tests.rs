//! The decision rule and the filters, case by case.

use super::*;

fn acl(t: ResourceType, p: PatternType, name: &str, who: &str, op: Operation, perm: Permission) -> AclBinding {
    AclBinding { resource_type: t, pattern_type: p, resource_name: name.into(), principal: who.into(), host: "*".into(), operation: op, permission: perm }
}

use Operation::*;
use PatternType::*;
use Permission::*;
use ResourceType::*;

#[test]
fn literal_prefixed_and_wildcard_patterns() {
    let acls = [
        acl(Topic, Literal, "orders", "User:alice", Read, Allow),
        acl(Topic, Prefixed, "logs-", "User:bob", Write, Allow),
        acl(Topic, Literal, "*", "User:carol", Read, Allow),
    ];
    assert!(decide(&acls, "User:alice", Some("10.0.0.1"), Read, Topic, "orders", false));
    assert!(!decide(&acls, "User:alice", Some("10.0.0.1"), Read, Topic, "orders2", false), "literal is exact");
    assert!(decide(&acls, "User:bob", Some("10.0.0.1"), Write, Topic, "logs-app", false));
    assert!(!decide(&acls, "User:bob", Some("10.0.0.1"), Write, Topic, "log", false));
    assert!(decide(&acls, "User:carol", Some("10.0.0.1"), Read, Topic, "anything", false), "a literal * covers every topic");
    assert!(!decide(&acls, "User:alice", Some("10.0.0.1"), Read, Group, "orders", false), "another resource type");
}

#[test]
fn deny_wins_and_implied_operations() {
    let acls = [acl(Topic, Prefixed, "", "User:*", All, Allow), acl(Topic, Literal, "secret", "User:eve", Read, Deny)];
    assert!(decide(&acls, "User:eve", Some("h"), Write, Topic, "secret", false));
    assert!(!decide(&acls, "User:eve", Some("h"), Read, Topic, "secret", false), "deny over allow");
    assert!(decide(&acls, "User:eve", Some("h"), Describe, Topic, "secret", false), "denying Read does not deny Describe");
    let acls = [acl(Topic, Literal, "t", "User:a", Write, Allow), acl(Topic, Literal, "t", "User:b", AlterConfigs, Allow)];
    assert!(decide(&acls, "User:a", Some("h"), Describe, Topic, "t", false), "Write implies Describe");
    assert!(!decide(&acls, "User:a", Some("h"), Read, Topic, "t", false));
    assert!(decide(&acls, "User:b", Some("h"), DescribeConfigs, Topic, "t", false), "AlterConfigs implies DescribeConfigs");
    assert!(!decide(&acls, "User:b", Some("h"), Describe, Topic, "t", false));
}

#[test]
fn hosts_and_the_no_acl_default() {
    let mut a = acl(Group, Literal, "g", "User:a", Read, Allow);
    a.host = "10.0.0.1".into();
    assert!(decide([&a], "User:a", Some("10.0.0.1"), Read, Group, "g", false));
    assert!(!decide([&a], "User:a", Some("10.0.0.2"), Read, Group, "g", true), "covered: the default does not apply");
    assert!(decide([&a], "User:x", Some("h"), Read, Group, "other", true), "uncovered resource: allow_everyone_if_no_acl_found");
    assert!(!decide([&a], "User:x", Some("h"), Read, Group, "other", false));
    // An unknown host: a host-specific allowance does not apply, a host-specific denial does.
    assert!(!decide([&a], "User:a", None, Read, Group, "g", false));
    let mut d = acl(Group, Literal, "g", "User:a", Read, Deny);
    d.host = "10.0.0.9".into();
    let all = acl(Group, Literal, "g", "User:a", Read, Allow);
    assert!(decide([&all], "User:a", None, Read, Group, "g", false));
    assert!(!decide([&all, &d], "User:a", None, Read, Group, "g", false));
}

#[test]
fn bindings_are_checked() {
    assert!(acl(Topic, Literal, "t", "User:a", Read, Allow).check().is_ok());
    assert!(acl(Cluster, Literal, "c", "User:a", Alter, Allow).check().is_err());
    assert!(acl(Topic, Prefixed, "*", "User:a", Read, Allow).check().is_err());
    assert!(acl(Topic, Literal, "t", "alice", Read, Allow).check().is_err());
    let mut h = acl(Topic, Literal, "t", "User:a", Read, Allow);
    h.host = "not-an-ip".into();
    assert!(h.check().is_err());
    assert_eq!(Operation::from_code(i8::MIN), None);
    assert_eq!(Operation::parse("describe_configs"), Some(DescribeConfigs));
    for o in OPERATIONS {
        assert_eq!(Operation::from_code(o.code()), Some(o));
    }
}

#[test]
fn filters_match_as_kafka_describes_them() {
    let lit = acl(Topic, Literal, "orders", "User:a", Read, Allow);
    let pre = acl(Topic, Prefixed, "ord", "User:b", Write, Deny);
    let star = acl(Topic, Literal, "*", "User:c", Read, Allow);
    let any = AclFilter::from_codes(1, None, 1, None, None, 1, 1).expect("any");
    assert!([&lit, &pre, &star].iter().all(|b| any.matches(b)));
    let exact = AclFilter::from_codes(2, Some("orders"), 3, None, None, 1, 1).expect("literal");
    assert!(exact.matches(&lit) && !exact.matches(&pre) && !exact.matches(&star));
    let matching = AclFilter::from_codes(2, Some("orders"), 2, None, None, 1, 1).expect("match");
    assert!(matching.matches(&lit) && matching.matches(&pre) && matching.matches(&star));
    let by_principal = AclFilter::from_codes(1, None, 1, Some("User:b"), None, 1, 2).expect("deny of b");
    assert!(by_principal.matches(&pre) && !by_principal.matches(&lit));
    assert!(AclFilter::from_codes(9, None, 1, None, None, 1, 1).is_err());
}

//! Who may do what to a group, over the gRPC API as clients call it: every role (owner,
//! admin, member, a user who is not a member, the app, and a user and the business of
//! another app) across every group call, under every join policy, in both fan-out
//! modes. The allowed set is written out here by hand; every refused call must leave
//! the group exactly as it was.

use gim::proto::logic::v1::{
    CreateGroupRequest, Group, GroupHistoryRequest, GroupMember, GroupRef, GroupRole, GroupSendRequest,
    JoinGroupRequest, JoinPolicy, JoinRequest, ListMembersRequest, MembersRequest, MuteMemberRequest,
    ReviewJoinRequest, SetNicknameRequest, SetRoleRequest, SyncGroupRequest, TransferOwnershipRequest,
    UpdateGroupRequest,
};
use tonic::Code;

use crate::{
    both_stores,
    support::{Backend, Intercepted, TestApp, TestServer, code, groups_client, pushed_message, text},
};

type Groups = gim::proto::logic::v1::groups_client::GroupsClient<Intercepted>;

both_stores!(every_role_may_do_exactly_what_its_standing_allows, a_user_who_invites_itself_gets_nothing_of_the_group);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
    Outsider,
    App,
    /// A user of another app whose id is the owner's.
    OtherAppUser,
    /// Another app's business, acting as that app.
    OtherApp,
}

const ROLES: [Role; 7] =
    [Role::Owner, Role::Admin, Role::Member, Role::Outsider, Role::App, Role::OtherAppUser, Role::OtherApp];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    GetGroup,
    ListMembers,
    GetHistory,
    SyncGroup,
    ListJoinRequests,
    Send,
    Update,
    Join,
    /// Invites `out` (for the outsider: itself).
    InviteOutsider,
    Approve,
    Reject,
    RemoveMember,
    RemoveAdmin,
    Leave,
    MakeAdmin,
    Transfer,
    MuteMember,
    MuteAdmin,
    RenameSelf,
    RenameMember,
    Dismiss,
}

const ACTIONS: [Action; 21] = [
    Action::GetGroup,
    Action::ListMembers,
    Action::GetHistory,
    Action::SyncGroup,
    Action::ListJoinRequests,
    Action::Send,
    Action::Update,
    Action::Join,
    Action::InviteOutsider,
    Action::Approve,
    Action::Reject,
    Action::RemoveMember,
    Action::RemoveAdmin,
    Action::Leave,
    Action::MakeAdmin,
    Action::Transfer,
    Action::MuteMember,
    Action::MuteAdmin,
    Action::RenameSelf,
    Action::RenameMember,
    Action::Dismiss,
];

/// The roles that may take `action` in a group with `policy`: the contract.
fn allowed(action: Action, policy: JoinPolicy) -> &'static [Role] {
    use Role::*;
    match action {
        Action::GetGroup => &[Owner, Admin, Member, Outsider, App],
        Action::ListMembers | Action::GetHistory | Action::SyncGroup | Action::Send => &[Owner, Admin, Member, App],
        Action::ListJoinRequests | Action::Approve | Action::Reject | Action::Update => &[Owner, Admin, App],
        // Members are in already (nothing to do); others get in, or ask, unless invite-only.
        Action::Join if policy == JoinPolicy::InviteOnly => &[Owner, Admin, Member],
        Action::Join => &[Owner, Admin, Member, Outsider],
        Action::InviteOutsider if policy == JoinPolicy::Free => &[Owner, Admin, Member, App],
        Action::InviteOutsider => &[Owner, Admin, App],
        Action::RemoveMember | Action::MuteMember | Action::RenameMember => &[Owner, Admin, App],
        // An admin may remove itself; only the owner and the app remove other admins.
        Action::RemoveAdmin => &[Owner, Admin, App],
        Action::Leave => &[Admin, Member],
        Action::MakeAdmin | Action::Transfer | Action::MuteAdmin | Action::Dismiss => &[Owner, App],
        Action::RenameSelf => &[Owner, Admin, Member],
    }
}

fn changes_the_group(action: Action) -> bool {
    !matches!(
        action,
        Action::GetGroup | Action::ListMembers | Action::GetHistory | Action::SyncGroup | Action::ListJoinRequests
    )
}

/// The clients of every role, in one app (and one other app).
struct Cast {
    app: TestApp,
    clients: Vec<(Role, Groups)>,
}

impl Cast {
    async fn new(server: &TestServer) -> Self {
        let app = server.new_app().await;
        let other = server.new_app().await;
        let mut clients = Vec::new();
        for (role, user) in [
            (Role::Owner, "own"),
            (Role::Admin, "adm"),
            (Role::Member, "mem"),
            (Role::Outsider, "out"),
            (Role::App, ""),
            (Role::OtherAppUser, "own"),
            (Role::OtherApp, ""),
        ] {
            let client = match role {
                Role::App => app.groups(None).await,
                Role::OtherApp => other.groups(None).await,
                Role::OtherAppUser => {
                    other.user(user).await;
                    groups_client(other.addr, &other.device_token(user, "phone").await).await
                }
                _ => {
                    app.user(user).await;
                    groups_client(app.addr, &app.device_token(user, "phone").await).await
                }
            };
            clients.push((role, client));
        }
        for user in ["mem2", "req"] {
            app.user(user).await;
        }
        Self { app, clients }
    }

    fn client(&mut self, role: Role) -> &mut Groups {
        &mut self.clients.iter_mut().find(|(r, _)| *r == role).expect("every role has a client").1
    }

    /// A group of `own` (owner), `adm` (admin), `mem` and `mem2`, with a request to join
    /// from `req`, under `policy`.
    async fn group(&mut self, id: &str, policy: JoinPolicy) {
        let app = self.client(Role::App);
        let create = CreateGroupRequest {
            group_id: id.into(),
            name: id.into(),
            owner_id: "own".into(),
            join_policy: JoinPolicy::Approval as i32,
            member_ids: vec!["adm".into(), "mem".into(), "mem2".into()],
            ..Default::default()
        };
        app.create_group(create).await.expect("creating a group");
        let admin = SetRoleRequest { group_id: id.into(), user_id: "adm".into(), role: GroupRole::Admin as i32 };
        app.set_role(admin).await.expect("naming an admin");
        let token = self.app.device_token("req", "phone").await;
        let mut req = groups_client(self.app.addr, &token).await;
        req.join_group(JoinGroupRequest { group_id: id.into(), message: "please".into() }).await.expect("asking");
        if policy != JoinPolicy::Approval {
            let update = UpdateGroupRequest { group_id: id.into(), join_policy: policy as i32, ..Default::default() };
            self.client(Role::App).update_group(update).await.expect("setting the policy");
        }
    }

    /// Everything the app can see of a group.
    async fn snapshot(&mut self, id: &str) -> (Group, Vec<GroupMember>, Vec<JoinRequest>, usize) {
        let app = self.client(Role::App);
        let group = app.get_group(GroupRef { group_id: id.into() }).await.unwrap().into_inner();
        let members = app
            .list_members(ListMembersRequest { group_id: id.into(), after_user_id: String::new(), limit: 100 })
            .await
            .unwrap()
            .into_inner()
            .members;
        let requests = app.list_join_requests(GroupRef { group_id: id.into() }).await.unwrap().into_inner().requests;
        let history = app
            .get_history(GroupHistoryRequest { group_id: id.into(), page_token: String::new(), limit: 100 })
            .await
            .unwrap()
            .into_inner()
            .messages
            .len();
        (group, members, requests, history)
    }

    async fn act(&mut self, role: Role, action: Action, id: &str) -> Code {
        let client = self.client(role);
        let group = || GroupRef { group_id: id.into() };
        let members = |users: &[&str]| MembersRequest {
            group_id: id.into(),
            user_ids: users.iter().map(|u| (*u).to_owned()).collect(),
        };
        let review = |approve| ReviewJoinRequest { group_id: id.into(), user_id: "req".into(), approve };
        let mute = |user: &str| MuteMemberRequest { group_id: id.into(), user_id: user.into(), duration_seconds: 60 };
        let rename =
            |user: &str| SetNicknameRequest { group_id: id.into(), user_id: user.into(), nickname: "n".into() };
        match action {
            Action::GetGroup => code(client.get_group(group()).await),
            Action::ListMembers => {
                code(client.list_members(ListMembersRequest { group_id: id.into(), ..Default::default() }).await)
            }
            Action::GetHistory => {
                code(client.get_history(GroupHistoryRequest { group_id: id.into(), ..Default::default() }).await)
            }
            Action::SyncGroup => {
                code(client.sync_group(SyncGroupRequest { group_id: id.into(), ..Default::default() }).await)
            }
            Action::ListJoinRequests => code(client.list_join_requests(group()).await),
            Action::Send => code(
                client
                    .send_message(GroupSendRequest {
                        group_id: id.into(),
                        client_msg_id: "m".into(),
                        body: text("hi"),
                        reply_to_message_id: 0,
                    })
                    .await,
            ),
            Action::Update => code(
                client
                    .update_group(UpdateGroupRequest {
                        group_id: id.into(),
                        name: Some("x".into()),
                        ..Default::default()
                    })
                    .await,
            ),
            Action::Join => {
                code(client.join_group(JoinGroupRequest { group_id: id.into(), message: String::new() }).await)
            }
            Action::InviteOutsider => code(client.invite_members(members(&["out"])).await),
            Action::Approve => code(client.review_join(review(true)).await),
            Action::Reject => code(client.review_join(review(false)).await),
            Action::RemoveMember => code(client.remove_members(members(&["mem2"])).await),
            Action::RemoveAdmin => code(client.remove_members(members(&["adm"])).await),
            Action::Leave => code(client.leave_group(group()).await),
            Action::MakeAdmin => code(
                client
                    .set_role(SetRoleRequest {
                        group_id: id.into(),
                        user_id: "mem2".into(),
                        role: GroupRole::Admin as i32,
                    })
                    .await,
            ),
            Action::Transfer => code(
                client
                    .transfer_ownership(TransferOwnershipRequest { group_id: id.into(), new_owner_id: "mem2".into() })
                    .await,
            ),
            Action::MuteMember => code(client.mute_member(mute("mem2")).await),
            Action::MuteAdmin => code(client.mute_member(mute("adm")).await),
            Action::RenameSelf => code(client.set_nickname(rename("")).await),
            Action::RenameMember => code(client.set_nickname(rename("mem2")).await),
            Action::Dismiss => code(client.dismiss_group(group()).await),
        }
    }
}

async fn every_role_may_do_exactly_what_its_standing_allows(backend: Backend) {
    let mut wrong = Vec::new();
    // A threshold of 3 makes every group of the cast (4 members) large.
    for large_threshold in [200, 3] {
        let server = TestServer::start_with(backend, |config| config.groups.large_threshold = large_threshold).await;
        let mut cast = Cast::new(&server).await;
        for (p, policy) in [JoinPolicy::Free, JoinPolicy::Approval, JoinPolicy::InviteOnly].into_iter().enumerate() {
            // Reads share one group; each change gets a group of its own.
            let reads = format!("r{p}");
            cast.group(&reads, policy).await;
            let mut groups = 0;
            for action in ACTIONS {
                for role in ROLES {
                    let id = if changes_the_group(action) {
                        groups += 1;
                        let id = format!("c{p}-{groups}");
                        cast.group(&id, policy).await;
                        id
                    } else {
                        reads.clone()
                    };
                    let before = cast.snapshot(&id).await;
                    let result = cast.act(role, action, &id).await;
                    let expected = allowed(action, policy).contains(&role);
                    let case = format!("{action:?} by {role:?} ({policy:?}, large threshold {large_threshold})");
                    if (result == Code::Ok) != expected {
                        wrong.push(format!("{case}: {result:?}"));
                    }
                    if result != Code::Ok && cast.snapshot(&id).await != before {
                        wrong.push(format!("{case}: refused ({result:?}) but changed the group"));
                    }
                    // Another app's user finds no such group; its business is told first that
                    // a user's call needs a user.
                    let user_only = matches!(action, Action::Join | Action::Leave | Action::RenameSelf);
                    let another_app = match role {
                        Role::OtherAppUser => Some(Code::NotFound),
                        Role::OtherApp if user_only => Some(Code::InvalidArgument),
                        Role::OtherApp => Some(Code::NotFound),
                        _ => None,
                    };
                    if another_app.is_some_and(|expected| result != expected) {
                        wrong.push(format!("{case}: another app got {result:?}, not {another_app:?}"));
                    }
                }
            }
            let group = cast.snapshot(&reads).await.0;
            assert_eq!(group.large, large_threshold == 3, "the cast's groups are in the mode under test");
        }
    }
    assert!(wrong.is_empty(), "calls that differ from the contract:\n{}", wrong.join("\n"));
}

/// The audit's attack: a user who is not a member calls InviteMembers with its own id.
async fn a_user_who_invites_itself_gets_nothing_of_the_group(backend: Backend) {
    for large_threshold in [200, 1] {
        let server = TestServer::start_with(backend, |config| config.groups.large_threshold = large_threshold).await;
        let app = server.new_app().await;
        let mut c = app.group_users(&["owner", "member", "intruder"]).await;
        for (id, policy) in [("approval", JoinPolicy::Approval), ("closed", JoinPolicy::InviteOnly)] {
            let create = CreateGroupRequest {
                group_id: id.into(),
                name: id.into(),
                join_policy: policy as i32,
                member_ids: vec!["member".into()],
                ..Default::default()
            };
            c[0].create_group(create).await.unwrap();
            let invited =
                c[2].invite_members(MembersRequest { group_id: id.into(), user_ids: vec!["intruder".into()] }).await;
            assert_eq!(code(invited), Code::PermissionDenied, "{id}");
            let pushes_before = server.delivery.pushes().len();
            c[1].send_message(GroupSendRequest {
                group_id: id.into(),
                client_msg_id: format!("secret-{id}"),
                body: text("s"),
                reply_to_message_id: 0,
            })
            .await
            .unwrap();
            let reads = [
                code(c[2].list_members(ListMembersRequest { group_id: id.into(), ..Default::default() }).await),
                code(c[2].get_history(GroupHistoryRequest { group_id: id.into(), ..Default::default() }).await),
                code(c[2].sync_group(SyncGroupRequest { group_id: id.into(), ..Default::default() }).await),
            ];
            assert_eq!(reads, [Code::PermissionDenied; 3], "{id}: the intruder reads nothing");
            let pushes = server.delivery.wait_for(pushes_before + 1, std::time::Duration::from_secs(5)).await;
            assert!(pushes.len() > pushes_before, "{id}: the message was pushed");
            let reached: Vec<_> = pushes[pushes_before..]
                .iter()
                .filter(|push| push.users.iter().any(|u| u == "intruder"))
                .map(pushed_message)
                .collect();
            assert!(reached.is_empty(), "{id}: no push reaches the intruder: {reached:?}");
            let memberships = server.delivery.memberships();
            assert!(memberships.iter().all(|m| m.user_id != "intruder"), "{id}: no large-group subscription");
            assert!(app.inbox("intruder").await.is_empty(), "{id}: nothing in the intruder's inbox");
        }
    }
}

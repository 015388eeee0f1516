/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  query Me {\n    me {\n      user { id email fullName role }\n      organization { id name slug }\n    }\n  }\n": typeof types.MeDocument,
    "\n  fragment IncidentRow on Incident {\n    id\n    srcIp\n    status\n    severity\n    category\n    riskScore\n    confidence\n    firstSeen\n    lastSeen\n    eventCount\n    detectors\n    attackTechniques\n    model\n  }\n": typeof types.IncidentRowFragmentDoc,
    "\n  query Incidents($filter: IncidentFilter, $first: Int, $after: String, $since: DateTime) {\n    incidents(filter: $filter, first: $first, after: $after) {\n      edges { cursor node { ...IncidentRow } }\n      pageInfo { hasNextPage endCursor }\n    }\n    stats(since: $since) {\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n    }\n  }\n": typeof types.IncidentsDocument,
    "\n  subscription IncidentUpdates {\n    incidentUpdates { ...IncidentRow }\n  }\n": typeof types.IncidentUpdatesDocument,
    "\n  query Incident($id: ID!) {\n    incident(id: $id) {\n      ...IncidentRow\n      reason\n      topFeatures\n      evidenceSeqs\n      timeline { orgSeq at kind actor detail }\n      actions { ...ActionRow }\n      events(first: 100) {\n        id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n        username command url sessionId hostname message raw\n      }\n    }\n  }\n": typeof types.IncidentDocument,
    "\n  fragment ActionRow on Action {\n    id incidentId kind target durationSeconds status automatic needsApproval policyName\n    requestedBy decidedBy attempts expiresAt detail requestedAt updatedAt\n  }\n": typeof types.ActionRowFragmentDoc,
    "\n  mutation UpdateIncidentStatus($id: ID!, $status: IncidentStatus!, $note: String) {\n    updateIncidentStatus(id: $id, status: $status, note: $note) { id status }\n  }\n": typeof types.UpdateIncidentStatusDocument,
    "\n  mutation RequestAction($incidentId: ID!, $kind: ActionKind!, $params: ActionParams) {\n    requestAction(incidentId: $incidentId, kind: $kind, params: $params) { ...ActionRow }\n  }\n": typeof types.RequestActionDocument,
    "\n  mutation ApproveAction($id: ID!) {\n    approveAction(id: $id) { ...ActionRow }\n  }\n": typeof types.ApproveActionDocument,
    "\n  mutation RejectAction($id: ID!, $reason: String) {\n    rejectAction(id: $id, reason: $reason) { ...ActionRow }\n  }\n": typeof types.RejectActionDocument,
    "\n  query Stats($since: DateTime) {\n    stats(since: $since) {\n      since\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n      incidentsByCategory { key count }\n      eventsPerHour { hour count }\n      topSources { key count }\n    }\n    activeBlocks { actionId ip incidentId since expiresAt }\n  }\n": typeof types.StatsDocument,
    "\n  query Events($filter: EventFilter, $first: Int, $after: String) {\n    events(filter: $filter, first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n          username command url hostname message raw\n        }\n      }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.EventsDocument,
    "\n  query Response($isAdmin: Boolean!) {\n    pending: actions(filter: { status: PENDING_APPROVAL }, first: 100) { nodes { ...ActionRow } }\n    actions(first: 100) { nodes { ...ActionRow } }\n    activeBlocks { actionId ip incidentId since expiresAt }\n    containmentPolicies {\n      id name priority enabled mode updatedAt\n      conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }\n      action { kind durationSeconds }\n    }\n    containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n    agentKeys @include(if: $isAdmin) { id name prefix createdAt revokedAt }\n  }\n": typeof types.ResponseDocument,
    "\n  mutation CreatePolicy($input: ContainmentPolicyInput!) {\n    createContainmentPolicy(input: $input) { id }\n  }\n": typeof types.CreatePolicyDocument,
    "\n  mutation UpdatePolicy($id: ID!, $input: ContainmentPolicyInput!) {\n    updateContainmentPolicy(id: $id, input: $input) { id }\n  }\n": typeof types.UpdatePolicyDocument,
    "\n  mutation DeletePolicy($id: ID!) {\n    deleteContainmentPolicy(id: $id)\n  }\n": typeof types.DeletePolicyDocument,
    "\n  mutation SetAutoContainment($enabled: Boolean!) {\n    setAutoContainment(enabled: $enabled) { autoContainment }\n  }\n": typeof types.SetAutoContainmentDocument,
    "\n  mutation UpdateSettings($protectedRanges: [String!], $allowPrivateTargets: Boolean, $maxAutoBlocksPerMinute: Int) {\n    updateContainmentSettings(\n      protectedRanges: $protectedRanges\n      allowPrivateTargets: $allowPrivateTargets\n      maxAutoBlocksPerMinute: $maxAutoBlocksPerMinute\n    ) { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n  }\n": typeof types.UpdateSettingsDocument,
    "\n  mutation CreateAgentKey($name: String!) {\n    createAgentKey(name: $name) { key agentKey { id name prefix createdAt } }\n  }\n": typeof types.CreateAgentKeyDocument,
    "\n  mutation RevokeAgentKey($id: ID!) {\n    revokeAgentKey(id: $id)\n  }\n": typeof types.RevokeAgentKeyDocument,
    "\n  query Admin($auditAfter: String) {\n    users(first: 100) { nodes { id email fullName role isActive createdAt lastLogin } }\n    ingestKeys { id name prefix createdAt revokedAt }\n    auditLog(first: 50, after: $auditAfter) {\n      nodes { orgSeq recordedAt eventType actor requestIp details }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": typeof types.AdminDocument,
    "\n  mutation InviteUser($email: String!, $fullName: String!, $role: Role!) {\n    inviteUser(email: $email, fullName: $fullName, role: $role) { invitationToken expiresAt user { id email } }\n  }\n": typeof types.InviteUserDocument,
    "\n  mutation LockUser($id: ID!) {\n    lockUser(id: $id) { id isActive }\n  }\n": typeof types.LockUserDocument,
    "\n  mutation UnlockUser($id: ID!) {\n    unlockUser(id: $id) { id isActive }\n  }\n": typeof types.UnlockUserDocument,
    "\n  mutation CreateIngestKey($name: String!) {\n    createIngestKey(name: $name) { key ingestKey { id name prefix createdAt } }\n  }\n": typeof types.CreateIngestKeyDocument,
    "\n  mutation RevokeIngestKey($id: ID!) {\n    revokeIngestKey(id: $id)\n  }\n": typeof types.RevokeIngestKeyDocument,
    "\n  mutation ChangeUserRole($id: ID!, $role: Role!) {\n    changeUserRole(id: $id, role: $role) { id role }\n  }\n": typeof types.ChangeUserRoleDocument,
    "\n  mutation DeactivateUser($id: ID!) {\n    deactivateUser(id: $id) { id isActive }\n  }\n": typeof types.DeactivateUserDocument,
    "\n  mutation ReactivateUser($id: ID!) {\n    reactivateUser(id: $id) { id isActive }\n  }\n": typeof types.ReactivateUserDocument,
    "\n  query MySessions {\n    me { sessions { id createdAt lastUsedAt ip userAgent current } }\n  }\n": typeof types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) {\n    revokeSession(id: $id)\n  }\n": typeof types.RevokeSessionDocument,
    "\n  mutation RevokeOtherSessions {\n    revokeOtherSessions\n  }\n": typeof types.RevokeOtherSessionsDocument,
};
const documents: Documents = {
    "\n  query Me {\n    me {\n      user { id email fullName role }\n      organization { id name slug }\n    }\n  }\n": types.MeDocument,
    "\n  fragment IncidentRow on Incident {\n    id\n    srcIp\n    status\n    severity\n    category\n    riskScore\n    confidence\n    firstSeen\n    lastSeen\n    eventCount\n    detectors\n    attackTechniques\n    model\n  }\n": types.IncidentRowFragmentDoc,
    "\n  query Incidents($filter: IncidentFilter, $first: Int, $after: String, $since: DateTime) {\n    incidents(filter: $filter, first: $first, after: $after) {\n      edges { cursor node { ...IncidentRow } }\n      pageInfo { hasNextPage endCursor }\n    }\n    stats(since: $since) {\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n    }\n  }\n": types.IncidentsDocument,
    "\n  subscription IncidentUpdates {\n    incidentUpdates { ...IncidentRow }\n  }\n": types.IncidentUpdatesDocument,
    "\n  query Incident($id: ID!) {\n    incident(id: $id) {\n      ...IncidentRow\n      reason\n      topFeatures\n      evidenceSeqs\n      timeline { orgSeq at kind actor detail }\n      actions { ...ActionRow }\n      events(first: 100) {\n        id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n        username command url sessionId hostname message raw\n      }\n    }\n  }\n": types.IncidentDocument,
    "\n  fragment ActionRow on Action {\n    id incidentId kind target durationSeconds status automatic needsApproval policyName\n    requestedBy decidedBy attempts expiresAt detail requestedAt updatedAt\n  }\n": types.ActionRowFragmentDoc,
    "\n  mutation UpdateIncidentStatus($id: ID!, $status: IncidentStatus!, $note: String) {\n    updateIncidentStatus(id: $id, status: $status, note: $note) { id status }\n  }\n": types.UpdateIncidentStatusDocument,
    "\n  mutation RequestAction($incidentId: ID!, $kind: ActionKind!, $params: ActionParams) {\n    requestAction(incidentId: $incidentId, kind: $kind, params: $params) { ...ActionRow }\n  }\n": types.RequestActionDocument,
    "\n  mutation ApproveAction($id: ID!) {\n    approveAction(id: $id) { ...ActionRow }\n  }\n": types.ApproveActionDocument,
    "\n  mutation RejectAction($id: ID!, $reason: String) {\n    rejectAction(id: $id, reason: $reason) { ...ActionRow }\n  }\n": types.RejectActionDocument,
    "\n  query Stats($since: DateTime) {\n    stats(since: $since) {\n      since\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n      incidentsByCategory { key count }\n      eventsPerHour { hour count }\n      topSources { key count }\n    }\n    activeBlocks { actionId ip incidentId since expiresAt }\n  }\n": types.StatsDocument,
    "\n  query Events($filter: EventFilter, $first: Int, $after: String) {\n    events(filter: $filter, first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n          username command url hostname message raw\n        }\n      }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.EventsDocument,
    "\n  query Response($isAdmin: Boolean!) {\n    pending: actions(filter: { status: PENDING_APPROVAL }, first: 100) { nodes { ...ActionRow } }\n    actions(first: 100) { nodes { ...ActionRow } }\n    activeBlocks { actionId ip incidentId since expiresAt }\n    containmentPolicies {\n      id name priority enabled mode updatedAt\n      conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }\n      action { kind durationSeconds }\n    }\n    containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n    agentKeys @include(if: $isAdmin) { id name prefix createdAt revokedAt }\n  }\n": types.ResponseDocument,
    "\n  mutation CreatePolicy($input: ContainmentPolicyInput!) {\n    createContainmentPolicy(input: $input) { id }\n  }\n": types.CreatePolicyDocument,
    "\n  mutation UpdatePolicy($id: ID!, $input: ContainmentPolicyInput!) {\n    updateContainmentPolicy(id: $id, input: $input) { id }\n  }\n": types.UpdatePolicyDocument,
    "\n  mutation DeletePolicy($id: ID!) {\n    deleteContainmentPolicy(id: $id)\n  }\n": types.DeletePolicyDocument,
    "\n  mutation SetAutoContainment($enabled: Boolean!) {\n    setAutoContainment(enabled: $enabled) { autoContainment }\n  }\n": types.SetAutoContainmentDocument,
    "\n  mutation UpdateSettings($protectedRanges: [String!], $allowPrivateTargets: Boolean, $maxAutoBlocksPerMinute: Int) {\n    updateContainmentSettings(\n      protectedRanges: $protectedRanges\n      allowPrivateTargets: $allowPrivateTargets\n      maxAutoBlocksPerMinute: $maxAutoBlocksPerMinute\n    ) { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n  }\n": types.UpdateSettingsDocument,
    "\n  mutation CreateAgentKey($name: String!) {\n    createAgentKey(name: $name) { key agentKey { id name prefix createdAt } }\n  }\n": types.CreateAgentKeyDocument,
    "\n  mutation RevokeAgentKey($id: ID!) {\n    revokeAgentKey(id: $id)\n  }\n": types.RevokeAgentKeyDocument,
    "\n  query Admin($auditAfter: String) {\n    users(first: 100) { nodes { id email fullName role isActive createdAt lastLogin } }\n    ingestKeys { id name prefix createdAt revokedAt }\n    auditLog(first: 50, after: $auditAfter) {\n      nodes { orgSeq recordedAt eventType actor requestIp details }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n": types.AdminDocument,
    "\n  mutation InviteUser($email: String!, $fullName: String!, $role: Role!) {\n    inviteUser(email: $email, fullName: $fullName, role: $role) { invitationToken expiresAt user { id email } }\n  }\n": types.InviteUserDocument,
    "\n  mutation LockUser($id: ID!) {\n    lockUser(id: $id) { id isActive }\n  }\n": types.LockUserDocument,
    "\n  mutation UnlockUser($id: ID!) {\n    unlockUser(id: $id) { id isActive }\n  }\n": types.UnlockUserDocument,
    "\n  mutation CreateIngestKey($name: String!) {\n    createIngestKey(name: $name) { key ingestKey { id name prefix createdAt } }\n  }\n": types.CreateIngestKeyDocument,
    "\n  mutation RevokeIngestKey($id: ID!) {\n    revokeIngestKey(id: $id)\n  }\n": types.RevokeIngestKeyDocument,
    "\n  mutation ChangeUserRole($id: ID!, $role: Role!) {\n    changeUserRole(id: $id, role: $role) { id role }\n  }\n": types.ChangeUserRoleDocument,
    "\n  mutation DeactivateUser($id: ID!) {\n    deactivateUser(id: $id) { id isActive }\n  }\n": types.DeactivateUserDocument,
    "\n  mutation ReactivateUser($id: ID!) {\n    reactivateUser(id: $id) { id isActive }\n  }\n": types.ReactivateUserDocument,
    "\n  query MySessions {\n    me { sessions { id createdAt lastUsedAt ip userAgent current } }\n  }\n": types.MySessionsDocument,
    "\n  mutation RevokeSession($id: ID!) {\n    revokeSession(id: $id)\n  }\n": types.RevokeSessionDocument,
    "\n  mutation RevokeOtherSessions {\n    revokeOtherSessions\n  }\n": types.RevokeOtherSessionsDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me {\n    me {\n      user { id email fullName role }\n      organization { id name slug }\n    }\n  }\n"): (typeof documents)["\n  query Me {\n    me {\n      user { id email fullName role }\n      organization { id name slug }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment IncidentRow on Incident {\n    id\n    srcIp\n    status\n    severity\n    category\n    riskScore\n    confidence\n    firstSeen\n    lastSeen\n    eventCount\n    detectors\n    attackTechniques\n    model\n  }\n"): (typeof documents)["\n  fragment IncidentRow on Incident {\n    id\n    srcIp\n    status\n    severity\n    category\n    riskScore\n    confidence\n    firstSeen\n    lastSeen\n    eventCount\n    detectors\n    attackTechniques\n    model\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Incidents($filter: IncidentFilter, $first: Int, $after: String, $since: DateTime) {\n    incidents(filter: $filter, first: $first, after: $after) {\n      edges { cursor node { ...IncidentRow } }\n      pageInfo { hasNextPage endCursor }\n    }\n    stats(since: $since) {\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n    }\n  }\n"): (typeof documents)["\n  query Incidents($filter: IncidentFilter, $first: Int, $after: String, $since: DateTime) {\n    incidents(filter: $filter, first: $first, after: $after) {\n      edges { cursor node { ...IncidentRow } }\n      pageInfo { hasNextPage endCursor }\n    }\n    stats(since: $since) {\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  subscription IncidentUpdates {\n    incidentUpdates { ...IncidentRow }\n  }\n"): (typeof documents)["\n  subscription IncidentUpdates {\n    incidentUpdates { ...IncidentRow }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Incident($id: ID!) {\n    incident(id: $id) {\n      ...IncidentRow\n      reason\n      topFeatures\n      evidenceSeqs\n      timeline { orgSeq at kind actor detail }\n      actions { ...ActionRow }\n      events(first: 100) {\n        id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n        username command url sessionId hostname message raw\n      }\n    }\n  }\n"): (typeof documents)["\n  query Incident($id: ID!) {\n    incident(id: $id) {\n      ...IncidentRow\n      reason\n      topFeatures\n      evidenceSeqs\n      timeline { orgSeq at kind actor detail }\n      actions { ...ActionRow }\n      events(first: 100) {\n        id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n        username command url sessionId hostname message raw\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  fragment ActionRow on Action {\n    id incidentId kind target durationSeconds status automatic needsApproval policyName\n    requestedBy decidedBy attempts expiresAt detail requestedAt updatedAt\n  }\n"): (typeof documents)["\n  fragment ActionRow on Action {\n    id incidentId kind target durationSeconds status automatic needsApproval policyName\n    requestedBy decidedBy attempts expiresAt detail requestedAt updatedAt\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateIncidentStatus($id: ID!, $status: IncidentStatus!, $note: String) {\n    updateIncidentStatus(id: $id, status: $status, note: $note) { id status }\n  }\n"): (typeof documents)["\n  mutation UpdateIncidentStatus($id: ID!, $status: IncidentStatus!, $note: String) {\n    updateIncidentStatus(id: $id, status: $status, note: $note) { id status }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RequestAction($incidentId: ID!, $kind: ActionKind!, $params: ActionParams) {\n    requestAction(incidentId: $incidentId, kind: $kind, params: $params) { ...ActionRow }\n  }\n"): (typeof documents)["\n  mutation RequestAction($incidentId: ID!, $kind: ActionKind!, $params: ActionParams) {\n    requestAction(incidentId: $incidentId, kind: $kind, params: $params) { ...ActionRow }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ApproveAction($id: ID!) {\n    approveAction(id: $id) { ...ActionRow }\n  }\n"): (typeof documents)["\n  mutation ApproveAction($id: ID!) {\n    approveAction(id: $id) { ...ActionRow }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RejectAction($id: ID!, $reason: String) {\n    rejectAction(id: $id, reason: $reason) { ...ActionRow }\n  }\n"): (typeof documents)["\n  mutation RejectAction($id: ID!, $reason: String) {\n    rejectAction(id: $id, reason: $reason) { ...ActionRow }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Stats($since: DateTime) {\n    stats(since: $since) {\n      since\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n      incidentsByCategory { key count }\n      eventsPerHour { hour count }\n      topSources { key count }\n    }\n    activeBlocks { actionId ip incidentId since expiresAt }\n  }\n"): (typeof documents)["\n  query Stats($since: DateTime) {\n    stats(since: $since) {\n      since\n      incidentsByStatus { key count }\n      incidentsBySeverity { key count }\n      incidentsByCategory { key count }\n      eventsPerHour { hour count }\n      topSources { key count }\n    }\n    activeBlocks { actionId ip incidentId since expiresAt }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Events($filter: EventFilter, $first: Int, $after: String) {\n    events(filter: $filter, first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n          username command url hostname message raw\n        }\n      }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Events($filter: EventFilter, $first: Int, $after: String) {\n    events(filter: $filter, first: $first, after: $after) {\n      edges {\n        cursor\n        node {\n          id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort\n          username command url hostname message raw\n        }\n      }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Response($isAdmin: Boolean!) {\n    pending: actions(filter: { status: PENDING_APPROVAL }, first: 100) { nodes { ...ActionRow } }\n    actions(first: 100) { nodes { ...ActionRow } }\n    activeBlocks { actionId ip incidentId since expiresAt }\n    containmentPolicies {\n      id name priority enabled mode updatedAt\n      conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }\n      action { kind durationSeconds }\n    }\n    containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n    agentKeys @include(if: $isAdmin) { id name prefix createdAt revokedAt }\n  }\n"): (typeof documents)["\n  query Response($isAdmin: Boolean!) {\n    pending: actions(filter: { status: PENDING_APPROVAL }, first: 100) { nodes { ...ActionRow } }\n    actions(first: 100) { nodes { ...ActionRow } }\n    activeBlocks { actionId ip incidentId since expiresAt }\n    containmentPolicies {\n      id name priority enabled mode updatedAt\n      conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }\n      action { kind durationSeconds }\n    }\n    containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n    agentKeys @include(if: $isAdmin) { id name prefix createdAt revokedAt }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreatePolicy($input: ContainmentPolicyInput!) {\n    createContainmentPolicy(input: $input) { id }\n  }\n"): (typeof documents)["\n  mutation CreatePolicy($input: ContainmentPolicyInput!) {\n    createContainmentPolicy(input: $input) { id }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdatePolicy($id: ID!, $input: ContainmentPolicyInput!) {\n    updateContainmentPolicy(id: $id, input: $input) { id }\n  }\n"): (typeof documents)["\n  mutation UpdatePolicy($id: ID!, $input: ContainmentPolicyInput!) {\n    updateContainmentPolicy(id: $id, input: $input) { id }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeletePolicy($id: ID!) {\n    deleteContainmentPolicy(id: $id)\n  }\n"): (typeof documents)["\n  mutation DeletePolicy($id: ID!) {\n    deleteContainmentPolicy(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation SetAutoContainment($enabled: Boolean!) {\n    setAutoContainment(enabled: $enabled) { autoContainment }\n  }\n"): (typeof documents)["\n  mutation SetAutoContainment($enabled: Boolean!) {\n    setAutoContainment(enabled: $enabled) { autoContainment }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateSettings($protectedRanges: [String!], $allowPrivateTargets: Boolean, $maxAutoBlocksPerMinute: Int) {\n    updateContainmentSettings(\n      protectedRanges: $protectedRanges\n      allowPrivateTargets: $allowPrivateTargets\n      maxAutoBlocksPerMinute: $maxAutoBlocksPerMinute\n    ) { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n  }\n"): (typeof documents)["\n  mutation UpdateSettings($protectedRanges: [String!], $allowPrivateTargets: Boolean, $maxAutoBlocksPerMinute: Int) {\n    updateContainmentSettings(\n      protectedRanges: $protectedRanges\n      allowPrivateTargets: $allowPrivateTargets\n      maxAutoBlocksPerMinute: $maxAutoBlocksPerMinute\n    ) { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateAgentKey($name: String!) {\n    createAgentKey(name: $name) { key agentKey { id name prefix createdAt } }\n  }\n"): (typeof documents)["\n  mutation CreateAgentKey($name: String!) {\n    createAgentKey(name: $name) { key agentKey { id name prefix createdAt } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeAgentKey($id: ID!) {\n    revokeAgentKey(id: $id)\n  }\n"): (typeof documents)["\n  mutation RevokeAgentKey($id: ID!) {\n    revokeAgentKey(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Admin($auditAfter: String) {\n    users(first: 100) { nodes { id email fullName role isActive createdAt lastLogin } }\n    ingestKeys { id name prefix createdAt revokedAt }\n    auditLog(first: 50, after: $auditAfter) {\n      nodes { orgSeq recordedAt eventType actor requestIp details }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"): (typeof documents)["\n  query Admin($auditAfter: String) {\n    users(first: 100) { nodes { id email fullName role isActive createdAt lastLogin } }\n    ingestKeys { id name prefix createdAt revokedAt }\n    auditLog(first: 50, after: $auditAfter) {\n      nodes { orgSeq recordedAt eventType actor requestIp details }\n      pageInfo { hasNextPage endCursor }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation InviteUser($email: String!, $fullName: String!, $role: Role!) {\n    inviteUser(email: $email, fullName: $fullName, role: $role) { invitationToken expiresAt user { id email } }\n  }\n"): (typeof documents)["\n  mutation InviteUser($email: String!, $fullName: String!, $role: Role!) {\n    inviteUser(email: $email, fullName: $fullName, role: $role) { invitationToken expiresAt user { id email } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation LockUser($id: ID!) {\n    lockUser(id: $id) { id isActive }\n  }\n"): (typeof documents)["\n  mutation LockUser($id: ID!) {\n    lockUser(id: $id) { id isActive }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UnlockUser($id: ID!) {\n    unlockUser(id: $id) { id isActive }\n  }\n"): (typeof documents)["\n  mutation UnlockUser($id: ID!) {\n    unlockUser(id: $id) { id isActive }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateIngestKey($name: String!) {\n    createIngestKey(name: $name) { key ingestKey { id name prefix createdAt } }\n  }\n"): (typeof documents)["\n  mutation CreateIngestKey($name: String!) {\n    createIngestKey(name: $name) { key ingestKey { id name prefix createdAt } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeIngestKey($id: ID!) {\n    revokeIngestKey(id: $id)\n  }\n"): (typeof documents)["\n  mutation RevokeIngestKey($id: ID!) {\n    revokeIngestKey(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ChangeUserRole($id: ID!, $role: Role!) {\n    changeUserRole(id: $id, role: $role) { id role }\n  }\n"): (typeof documents)["\n  mutation ChangeUserRole($id: ID!, $role: Role!) {\n    changeUserRole(id: $id, role: $role) { id role }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeactivateUser($id: ID!) {\n    deactivateUser(id: $id) { id isActive }\n  }\n"): (typeof documents)["\n  mutation DeactivateUser($id: ID!) {\n    deactivateUser(id: $id) { id isActive }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation ReactivateUser($id: ID!) {\n    reactivateUser(id: $id) { id isActive }\n  }\n"): (typeof documents)["\n  mutation ReactivateUser($id: ID!) {\n    reactivateUser(id: $id) { id isActive }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query MySessions {\n    me { sessions { id createdAt lastUsedAt ip userAgent current } }\n  }\n"): (typeof documents)["\n  query MySessions {\n    me { sessions { id createdAt lastUsedAt ip userAgent current } }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeSession($id: ID!) {\n    revokeSession(id: $id)\n  }\n"): (typeof documents)["\n  mutation RevokeSession($id: ID!) {\n    revokeSession(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeOtherSessions {\n    revokeOtherSessions\n  }\n"): (typeof documents)["\n  mutation RevokeOtherSessions {\n    revokeOtherSessions\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;
// Every GraphQL operation of the console. Types come from graphql/schema.graphql through
// graphql-codegen (src/gql, generated: `npm run codegen`).
import { graphql } from "./gql";

export const MeQuery = graphql(`
  query Me {
    me {
      user { id email fullName role }
      organization { id name slug }
    }
  }
`);

export const IncidentRowFields = graphql(`
  fragment IncidentRow on Incident {
    id
    srcIp
    status
    severity
    category
    riskScore
    confidence
    firstSeen
    lastSeen
    eventCount
    detectors
    attackTechniques
    model
  }
`);

export const IncidentsQuery = graphql(`
  query Incidents($filter: IncidentFilter, $first: Int, $after: String, $since: DateTime) {
    incidents(filter: $filter, first: $first, after: $after) {
      edges { cursor node { ...IncidentRow } }
      pageInfo { hasNextPage endCursor }
    }
    stats(since: $since) {
      incidentsByStatus { key count }
      incidentsBySeverity { key count }
    }
  }
`);

export const IncidentUpdatesSubscription = graphql(`
  subscription IncidentUpdates {
    incidentUpdates { ...IncidentRow }
  }
`);

export const IncidentQuery = graphql(`
  query Incident($id: ID!) {
    incident(id: $id) {
      ...IncidentRow
      reason
      topFeatures
      evidenceSeqs
      timeline { orgSeq at kind actor detail }
      actions { ...ActionRow }
      events(first: 100) {
        id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort
        username command url sessionId hostname message raw
      }
    }
  }
`);

export const ActionRowFields = graphql(`
  fragment ActionRow on Action {
    id incidentId kind target durationSeconds status automatic needsApproval policyName
    requestedBy decidedBy attempts expiresAt detail requestedAt updatedAt
  }
`);

export const UpdateIncidentStatusMutation = graphql(`
  mutation UpdateIncidentStatus($id: ID!, $status: IncidentStatus!, $note: String) {
    updateIncidentStatus(id: $id, status: $status, note: $note) { id status }
  }
`);

export const RequestActionMutation = graphql(`
  mutation RequestAction($incidentId: ID!, $kind: ActionKind!, $params: ActionParams) {
    requestAction(incidentId: $incidentId, kind: $kind, params: $params) { ...ActionRow }
  }
`);

export const ApproveActionMutation = graphql(`
  mutation ApproveAction($id: ID!) {
    approveAction(id: $id) { ...ActionRow }
  }
`);

export const RejectActionMutation = graphql(`
  mutation RejectAction($id: ID!, $reason: String) {
    rejectAction(id: $id, reason: $reason) { ...ActionRow }
  }
`);

export const StatsQuery = graphql(`
  query Stats($since: DateTime) {
    stats(since: $since) {
      since
      incidentsByStatus { key count }
      incidentsBySeverity { key count }
      incidentsByCategory { key count }
      eventsPerHour { hour count }
      topSources { key count }
    }
    activeBlocks { actionId ip incidentId since expiresAt }
  }
`);

export const EventsQuery = graphql(`
  query Events($filter: EventFilter, $first: Int, $after: String) {
    events(filter: $filter, first: $first, after: $after) {
      edges {
        cursor
        node {
          id orgSeq timestamp sourceType eventType srcIp srcPort dstIp dstPort
          username command url hostname message raw
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const ResponseQuery = graphql(`
  query Response($isAdmin: Boolean!) {
    pending: actions(filter: { status: PENDING_APPROVAL }, first: 100) { nodes { ...ActionRow } }
    actions(first: 100) { nodes { ...ActionRow } }
    activeBlocks { actionId ip incidentId since expiresAt }
    containmentPolicies {
      id name priority enabled mode updatedAt
      conditions { minSeverity categories minRisk techniques sourceIn sourceNotIn }
      action { kind durationSeconds }
    }
    containmentSettings { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }
    agentKeys @include(if: $isAdmin) { id name prefix createdAt revokedAt }
  }
`);

export const CreatePolicyMutation = graphql(`
  mutation CreatePolicy($input: ContainmentPolicyInput!) {
    createContainmentPolicy(input: $input) { id }
  }
`);

export const UpdatePolicyMutation = graphql(`
  mutation UpdatePolicy($id: ID!, $input: ContainmentPolicyInput!) {
    updateContainmentPolicy(id: $id, input: $input) { id }
  }
`);

export const DeletePolicyMutation = graphql(`
  mutation DeletePolicy($id: ID!) {
    deleteContainmentPolicy(id: $id)
  }
`);

export const SetAutoContainmentMutation = graphql(`
  mutation SetAutoContainment($enabled: Boolean!) {
    setAutoContainment(enabled: $enabled) { autoContainment }
  }
`);

export const UpdateSettingsMutation = graphql(`
  mutation UpdateSettings($protectedRanges: [String!], $allowPrivateTargets: Boolean, $maxAutoBlocksPerMinute: Int) {
    updateContainmentSettings(
      protectedRanges: $protectedRanges
      allowPrivateTargets: $allowPrivateTargets
      maxAutoBlocksPerMinute: $maxAutoBlocksPerMinute
    ) { autoContainment protectedRanges allowPrivateTargets maxAutoBlocksPerMinute }
  }
`);

export const CreateAgentKeyMutation = graphql(`
  mutation CreateAgentKey($name: String!) {
    createAgentKey(name: $name) { key agentKey { id name prefix createdAt } }
  }
`);

export const RevokeAgentKeyMutation = graphql(`
  mutation RevokeAgentKey($id: ID!) {
    revokeAgentKey(id: $id)
  }
`);

export const AdminQuery = graphql(`
  query Admin($auditAfter: String) {
    users(first: 100) { nodes { id email fullName role isActive createdAt lastLogin } }
    ingestKeys { id name prefix createdAt revokedAt }
    auditLog(first: 50, after: $auditAfter) {
      nodes { orgSeq recordedAt eventType actor requestIp details }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const InviteUserMutation = graphql(`
  mutation InviteUser($email: String!, $fullName: String!, $role: Role!) {
    inviteUser(email: $email, fullName: $fullName, role: $role) { invitationToken expiresAt user { id email } }
  }
`);

export const LockUserMutation = graphql(`
  mutation LockUser($id: ID!) {
    lockUser(id: $id) { id isActive }
  }
`);

export const UnlockUserMutation = graphql(`
  mutation UnlockUser($id: ID!) {
    unlockUser(id: $id) { id isActive }
  }
`);

export const CreateIngestKeyMutation = graphql(`
  mutation CreateIngestKey($name: String!) {
    createIngestKey(name: $name) { key ingestKey { id name prefix createdAt } }
  }
`);

export const RevokeIngestKeyMutation = graphql(`
  mutation RevokeIngestKey($id: ID!) {
    revokeIngestKey(id: $id)
  }
`);

export const ChangeUserRoleMutation = graphql(`
  mutation ChangeUserRole($id: ID!, $role: Role!) {
    changeUserRole(id: $id, role: $role) { id role }
  }
`);

export const DeactivateUserMutation = graphql(`
  mutation DeactivateUser($id: ID!) {
    deactivateUser(id: $id) { id isActive }
  }
`);

export const ReactivateUserMutation = graphql(`
  mutation ReactivateUser($id: ID!) {
    reactivateUser(id: $id) { id isActive }
  }
`);

export const MySessionsQuery = graphql(`
  query MySessions {
    me { sessions { id createdAt lastUsedAt ip userAgent current } }
  }
`);

export const RevokeSessionMutation = graphql(`
  mutation RevokeSession($id: ID!) {
    revokeSession(id: $id)
  }
`);

export const RevokeOtherSessionsMutation = graphql(`
  mutation RevokeOtherSessions {
    revokeOtherSessions
  }
`);

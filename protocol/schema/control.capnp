@0xdfa64e32fb0e16ad;
# The control plane: every message between the coordinator, the agents and the imgpipe CLI.
#
# Compatibility: fields and union members are only ever added, with new ordinals, so peers of
# the same major version interoperate across minor versions. A change that cannot be made that
# way bumps protocolMajor, and peers of another major version are refused with both versions
# named.

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("imgpipe::proto");

const protocolMajor :UInt16 = 1;
const protocolMinor :UInt16 = 0;

enum Role {
  unknown @0;
  build @1;
  relay @2;
  glance @3;
  operator @4;
}

struct Envelope {
  major @0 :UInt16;
  minor @1 :UInt16;
  body :union {
    # agent -> coordinator
    hello @2 :Hello;
    taskEvent @3 :TaskEvent;
    # coordinator -> agent
    welcome @4 :Welcome;
    assignTask @5 :Task;
    cancelTask @6 :CancelTask;
    taskEventAck @7 :TaskEventAck;
    grant @8 :Grant;
    # both ways; also the coordinator's answer to a peer it does not know yet
    heartbeat @9 :Void;
    refused @10 :Refused;
    # operator (CLI) <-> coordinator
    request @11 :OperatorRequest;
    reply @12 :OperatorReply;
    jobUpdate @13 :JobDetail;
    # coordinator -> agent: "I do not know this session (I restarted); send Hello again"
    sayHello @14 :Void;
  }
}

# --- agents -----------------------------------------------------------------------------

struct Hello {
  role @0 :Role;
  name @1 :Text;            # must equal the name its key has in the coordinator's authorized_keys
  version @2 :Text;         # imgpipe release, for `imgpipe agents`
  capacity @3 :UInt32;      # concurrent tasks it accepts (builds for a build agent)
  labels @4 :List(Text);
  dataEndpoint @5 :Text;    # where it serves artifacts to the next hop ("" if it serves none)
  activeTasks @6 :List(Text);  # task ids it is still working on, after a reconnect or restart
  freeBytes @7 :UInt64;     # free space in its artifact store
  inventory @8 :List(ArtifactSummary);  # complete artifacts it holds (delta bases)
}

struct Welcome {
  coordinatorId @0 :Text;   # stable id of this coordinator's state (its database)
  heartbeatIntervalMs @1 :UInt32;
  liveness @2 :UInt32;
}

struct Refused {
  reason @0 :Text;
  peerMajor @1 :UInt16;
  ourMajor @2 :UInt16;
}

struct Task {
  taskId @0 :Text;          # unique per attempt: "<job>.<step>.<attempt>"
  jobId @1 :Text;
  step @2 :Text;            # "build", "hop relay-1", "register ctrl-a"
  attempt @3 :UInt32;
  kind :union {
    build @4 :BuildTask;
    fetch @5 :FetchTask;
    register @6 :RegisterTask;
  }
}

struct BuildTask {
  definition @0 :Text;        # the image definition (YAML) exactly as submitted
  definitionName @1 :Text;    # the file it came from, for error messages
  definitionDigest @2 :Text;  # sha256 hex of `definition`
  imageVersion @3 :Text;      # fixed by the coordinator at submit (derived when the definition has none)
  imageName @4 :Text;
  bundle @5 :List(BundleFile);  # the files the definition refers to (definition/bundle.h)
}

# A file that travels with a definition (a `source:` file, a script, a repository key), by its
# path relative to the definition. The definition's digest covers every one.
struct BundleFile {
  path @0 :Text;
  content @1 :Data;
}

# Fetch an artifact from the previous hop into this agent's store.
struct FetchTask {
  artifactId @0 :Text;        # sha256 hex of the image
  manifestDigest @1 :Text;    # sha256 hex of the encoded transfer manifest: the trust anchor
  imageName @2 :Text;
  imageVersion @3 :Text;
  upstreamName @4 :Text;
  upstreamEndpoint @5 :Text;  # tcp://host:port of the upstream's artifact server
  upstreamKey @6 :Text;       # its CurveZMQ public key: the only server this fetch will talk to
  rateLimit @7 :UInt64;       # bytes/s on this link; 0 = unlimited
  size @8 :UInt64;
}

# Register a delivered artifact in this controller's Glance.
struct RegisterTask {
  artifactId @0 :Text;
  manifestDigest @1 :Text;
  buildId @2 :Text;           # stable across retries: the Glance image id is derived from it
  imageName @3 :Text;
  imageVersion @4 :Text;
  definition @5 :Text;        # unused since 0.2: the registration travels in the artifact's
  definitionName @6 :Text;    # build manifest ("glance"), resolved once at build time
  sha256 @7 :Text;
  sha512 @8 :Text;
  size @9 :UInt64;
  output @10 :Text;           # the kind to register ("" = qcow2): a raw is expanded here
}

struct CancelTask {
  taskId @0 :Text;
  reason @1 :Text;
}

# Lets `key` fetch `artifactId` (and deltas to it) from the receiving agent's artifact server.
struct Grant {
  artifactId @0 :Text;
  peerName @1 :Text;
  peerKey @2 :Text;
  jobId @3 :Text;
  revoke @4 :Bool;
}

# Everything an agent says about a task. Events with reliable=true (step boundaries, results,
# failures) are kept by the agent until acknowledged and sent again after a reconnect; progress
# is best-effort. The coordinator applies each (taskId, seq) once.
struct TaskEvent {
  taskId @0 :Text;
  jobId @1 :Text;
  seq @2 :UInt64;
  reliable @3 :Bool;
  timeMs @4 :Int64;           # agent's wall clock, ms since the epoch
  kind :union {
    progress @5 :Progress;
    log @6 :LogLine;
    completed @7 :TaskResult;
    failed @8 :TaskFailure;
  }
}

struct TaskEventAck {
  taskId @0 :Text;
  seq @1 :UInt64;             # every reliable event up to and including seq
}

struct Progress {
  step @0 :Text;              # sub-step: "packages", "compact", "transfer", "upload"
  done @1 :UInt64;
  total @2 :UInt64;
  rateBps @3 :UInt64;
  etaS @4 :UInt32;
  attempt @5 :UInt32;         # retries so far (a hop reconnecting, Glance answering 5xx)
  state @6 :Text;             # "" while healthy; "stalled", "retrying", "waiting for upstream"
  unit @7 :Text;              # what done/total count: "" or "bytes", "seconds", "permille"
}

enum LogLevel {
  info @0;
  warn @1;
  error @2;
}

struct LogLine {
  level @0 :LogLevel;
  step @1 :Text;
  message @2 :Text;
  durationMs @3 :UInt64;      # set when a sub-step finished
}

struct TaskResult {
  artifact @0 :ArtifactSummary;
  glanceImageId @1 :Text;     # register tasks
  detail @2 :Text;            # human-readable summary
  checks @3 :List(CheckResult);  # build tasks: the validation and the acceptance boot
  # build tasks: the outputs that travel as files of their own beside `artifact` (the iso),
  # each with its own transfer manifest
  moreArtifacts @4 :List(ArtifactSummary);
}

# One check a build made of its image (offline validation, or in the booted guest).
struct CheckResult {
  group @0 :Text;             # "validate", "boot bios", "boot uefi", "boot nspawn"
  check @1 :Text;
  ok @2 :Bool;
  skipped @3 :Bool;           # did not apply (detail says why)
  detail @4 :Text;
}

struct TaskFailure {
  step @0 :Text;
  message @1 :Text;
  exitCode @2 :Int32;
  outputTail @3 :List(Text);
  retryable @4 :Bool;         # the coordinator may run the task again by itself
  checks @5 :List(CheckResult);  # build tasks: the checks made before the failure
}

struct ArtifactSummary {
  id @0 :Text;                # sha256 hex
  sha512 @1 :Text;
  size @2 :UInt64;
  virtualSize @3 :UInt64;
  manifestDigest @4 :Text;
  imageName @5 :Text;
  imageVersion @6 :Text;
  outputs @7 :List(Text);     # what each controller may register: "qcow2", "raw" (definition/outputs.h)
  kind @8 :Text;              # the output kind the file is: "qcow2" ("" before 0.5), "iso"
}

# --- operators --------------------------------------------------------------------------

struct OperatorRequest {
  requestId @0 :UInt64;
  kind :union {
    submit @1 :SubmitRequest;
    list @2 :ListRequest;
    show @3 :Text;            # job id
    events @4 :EventsRequest;
    cancel @5 :Text;
    retry @6 :Text;
    agents @7 :Void;
    watch @8 :Text;           # job id; updates follow as jobUpdate until the job ends
    unwatch @9 :Text;
  }
}

struct SubmitRequest {
  definition @0 :Text;
  definitionName @1 :Text;
  targets @2 :List(Text);     # controller agents or sites; empty = the configured default
  priority @3 :Int32;         # higher first
  labels @4 :List(Text);      # required build agent labels
  bundle @5 :List(BundleFile);  # files the definition refers to, read beside it by the CLI
  # Targets whose definition is another one of the bundle (a layer over `definition` with the
  # site's mirrors, Glance properties, ...). One build per distinct merged definition.
  siteDefinitions @6 :List(SiteDefinition);
}

struct SiteDefinition {
  target @0 :Text;            # a site or controller, as in `targets`
  definitionName @1 :Text;    # its definition: a bundle path
}

struct ListRequest {
  states @0 :List(JobState);  # empty = all
  limit @1 :UInt32;
}

struct EventsRequest {
  jobId @0 :Text;
  afterSeq @1 :UInt64;
}

struct OperatorReply {
  requestId @0 :UInt64;
  kind :union {
    error @1 :OperatorError;
    submitted @2 :JobSummary;
    jobs @3 :List(JobSummary);
    job @4 :JobDetail;
    events @5 :List(JobEvent);
    agents @6 :List(AgentInfo);
    ok @7 :Text;
  }
  # submitted: the jobs beside `submitted` when the targets' definitions differ (one per
  # distinct merged definition).
  alsoSubmitted @8 :List(JobSummary);
}

enum ErrorCode {
  badRequest @0;
  notFound @1;
  conflict @2;
  internal @3;
  forbidden @4;
}

struct OperatorError {
  code @0 :ErrorCode;
  message @1 :Text;
}

enum JobState {
  queued @0;
  building @1;
  transferring @2;
  registering @3;
  done @4;
  failed @5;
  cancelled @6;
}

struct JobSummary {
  id @0 :Text;
  imageName @1 :Text;
  imageVersion @2 :Text;
  state @3 :JobState;
  createdMs @4 :Int64;
  updatedMs @5 :Int64;
  location @6 :Text;          # where the job is now: "building on build-1", "relay-1 -> ctrl-a"
  targets @7 :List(Text);
  priority @8 :Int32;
  error @9 :Text;
}

enum StepState {
  pending @0;
  running @1;
  done @2;
  failed @3;
  cancelled @4;
  waiting @5;                 # its agent is lost; it resumes when the agent returns
}

struct StepInfo {
  name @0 :Text;
  agent @1 :Text;
  state @2 :StepState;
  detail @3 :Text;            # current sub-step, or "stalled"/"retrying"
  done @4 :UInt64;
  total @5 :UInt64;
  rateBps @6 :UInt64;
  etaS @7 :UInt32;
  attempts @8 :UInt32;
  error @9 :Text;
  startedMs @10 :Int64;
  finishedMs @11 :Int64;
  retries @12 :UInt32;
  unit @13 :Text;             # of done/total, as in Progress
  checks @14 :List(CheckResult);  # build steps: the image's checks, as the agent reported them
}

struct JobDetail {
  summary @0 :JobSummary;
  steps @1 :List(StepInfo);
  artifact @2 :ArtifactSummary;
  definitionDigest @3 :Text;
  definitionName @4 :Text;
  glanceImages @5 :List(GlanceImage);
  moreArtifacts @6 :List(ArtifactSummary);  # the job's other artifacts (the iso), as TaskResult's
}

struct GlanceImage {
  controller @0 :Text;
  imageId @1 :Text;
  output @2 :Text;            # qcow2, raw, iso
}

struct JobEvent {
  seq @0 :UInt64;
  timeMs @1 :Int64;
  level @2 :LogLevel;
  step @3 :Text;
  agent @4 :Text;
  message @5 :Text;
}

struct AgentInfo {
  name @0 :Text;
  role @1 :Role;
  online @2 :Bool;
  capacity @3 :UInt32;
  running @4 :UInt32;
  labels @5 :List(Text);
  lastSeenMs @6 :Int64;
  version @7 :Text;
  dataEndpoint @8 :Text;
  freeBytes @9 :UInt64;
}

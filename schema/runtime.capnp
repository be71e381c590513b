@0x869c70218fc8c5d4;
# Plumbing between capos-init and the services it starts. Not part of the
# proposal's surface: no service other than init ever holds a ServiceHost.

struct NamedCap {
  # A capability handed across, with the name the receiver knows it by.
  name @0 :Text;
  cap @1 :Capability;
}

struct NamedData {
  # A manifest section handed to a service, as a standalone message.
  name @0 :Text;
  data @1 :Data;
}

interface ServiceHost {
  # The bootstrap every service process exports to capos-init over its
  # socketpair, and nothing else.

  start @0 (grants :List(NamedCap), inputs :List(NamedData))
      -> (exports :List(NamedCap));
  # Hand the service exactly the capabilities and manifest sections its
  # manifest entry grants; it answers with the capabilities it exports.
  # Called once; a second call is refused.

  status @1 () -> (name :Text, pid :UInt32, ready :Bool);
  # Liveness, for init's supervision and the harness's report.

  ready @2 () -> ();
  # Every service has started. Called once on each, after the last
  # start returned: work a service puts off until the whole system is up
  # (an endpoint's certificate, an ACME order) may begin.
}

// Package proxy is QuorumDB's load balancer for applications that can talk to
// only one server: it listens on one port and forwards each MySQL connection,
// byte for byte, to a live node (round-robin or least connections).
//
// Every node is health-checked at a fixed interval with a real MySQL ping (a
// handshake and COM_PING through go-sql-driver/mysql) and, when the node has
// an HTTP address, its /ready endpoint. A node that fails one check is taken
// out at once, so a dead node leaves the rotation within two intervals; one
// passing check puts it back. A new connection is never sent to a node known
// to be dead; if dialing the chosen node fails, the node is marked down and
// the next one is tried.
//
// The proxy does not parse the MySQL protocol after the handshake and keeps
// no state per connection besides the two sockets, so a node's failure ends
// the connections that were on it (the client reconnects and is sent to a
// live node); it must not be used to hide failures inside a transaction.
package proxy

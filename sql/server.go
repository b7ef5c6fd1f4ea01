package qsql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/server"
	gms "github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/go-mysql-server/sql/analyzer"
	"github.com/dolthub/vitess/go/mysql"
)

// Config configures a Server.
type Config struct {
	// Listener to accept MySQL connections on; when nil, Address is listened on.
	Listener net.Listener
	// Address ("host:port") used when Listener is nil.
	Address string
	// DB is the transactional store (a *txn.DB).
	DB TxnDB
	// NodeID names this node in logs and in AUTO_INCREMENT block ownership.
	NodeID uint64
	// Logger for the layer; slog.Default() when nil.
	Logger *slog.Logger
	// Version reported to clients (the VERSION() suffix and handshake).
	Version string
	// RootPassword, when set, is root's password from any host. When empty,
	// root@localhost has no password and root can only log in over loopback.
	RootPassword string
	// MaxConnections, 0 for unlimited.
	MaxConnections uint64
	// AutoIncrementBlock is how many AUTO_INCREMENT values a node reserves
	// from a table's sequence at a time (default 100).
	AutoIncrementBlock uint64
	// MaxStatementRetries bounds the transparent retries of an autocommit
	// statement after a serialization failure (default 10).
	MaxStatementRetries int
	// RetryBackoff is the first pause between retries, doubled up to 100ms
	// (default 2ms).
	RetryBackoff time.Duration
	// ScanBatchSize is how many KV pairs a table scan fetches per round
	// trip (default 256).
	ScanBatchSize int
	// Knobs are testing hooks.
	// Events, when set, is told of every client connection and statement
	// (the node exports them as metrics).
	Events server.ServerEventListener
	// ClusterInfo, when set, backs the read-only system database quorumdb
	// (tables nodes and ranges).
	ClusterInfo ClusterInfo
	Knobs       TestingKnobs
}

// TestingKnobs are optional hooks for tests.
type TestingKnobs struct {
	// OnStatementRetry is called before an autocommit statement is re-run.
	OnStatementRetry func(connID uint32, attempt int, cause error)
	// BeforeCommit is called before a session commits a KV transaction
	// that was begun.
	BeforeCommit func(connID uint32)
}

type serverMetrics struct {
	retries atomic.Int64
}

// Server is the MySQL-protocol front end of one node: a go-mysql-server
// engine over our provider, listening for clients.
type Server struct {
	cfg      Config
	db       TxnDB
	log      *slog.Logger
	provider *Provider
	engine   *sqle.Engine
	gmsSrv   *server.Server
	errs     *errorMapper
	autoInc  *autoIncrementAllocator
	metrics  serverMetrics
	rowIDs   hiddenRowIDs
	sessions sync.Map // connection ID → *Session
	conns    sync.Map // connection ID → *mysql.Conn
	store    *schemaStore
	grants   *grantsSync
	// rowCounts caches planner row estimates per table ID (rowCountEntry).
	rowCounts sync.Map

	closeOnce sync.Once
}

// NewServer builds the engine and binds the listener; Serve accepts clients.
func NewServer(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("qsql: Config.DB is required")
	}
	if cfg.Listener == nil && cfg.Address == "" {
		return nil, fmt.Errorf("qsql: Config.Listener or Config.Address is required")
	}
	s, err := newEngineServer(cfg)
	if err != nil {
		return nil, err
	}
	scfg := server.Config{
		Protocol:       "tcp",
		Address:        cfg.Address,
		Listener:       cfg.Listener,
		Version:        cfg.Version,
		MaxConnections: cfg.MaxConnections,
	}
	if cfg.Listener != nil {
		scfg.Address = cfg.Listener.Addr().String()
	}
	gsrv, err := server.NewServerWithHandler(scfg, s.engine, gms.NewContext, s.newSession, cfg.Events,
		func(h mysql.Handler) (mysql.Handler, error) { return &handler{Handler: h, srv: s}, nil })
	if err != nil {
		return nil, fmt.Errorf("qsql: start mysql listener: %w", err)
	}
	s.gmsSrv = gsrv
	return s, nil
}

// newEngineServer builds everything but the listener (also used by the
// enginetest harness, which drives the engine in-process).
func newEngineServer(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AutoIncrementBlock == 0 {
		cfg.AutoIncrementBlock = 100
	}
	if cfg.MaxStatementRetries <= 0 {
		cfg.MaxStatementRetries = 10
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 2 * time.Millisecond
	}
	if cfg.ScanBatchSize <= 0 {
		cfg.ScanBatchSize = 256
	}
	s := &Server{
		cfg:  cfg,
		db:   cfg.DB,
		log:  cfg.Logger.With("layer", "sql", "node", cfg.NodeID),
		errs: newErrorMapper(),
	}
	s.autoInc = newAutoIncrementAllocator(s)
	s.store = &schemaStore{srv: s}
	s.provider = newProvider(s)
	a := analyzer.NewDefault(s.provider)
	registerSystemVariables()
	s.engine = sqle.New(a, &sqle.Config{VersionPostfix: cfg.Version, IncludeRootAccount: cfg.RootPassword == ""})
	s.engine.Parser = asOfParser{Parser: s.engine.Parser}
	s.grants = &grantsSync{srv: s}
	if err := s.grants.reload(context.Background()); err != nil {
		return nil, err
	}
	if cfg.RootPassword != "" {
		mdb := s.engine.Analyzer.Catalog.MySQLDb
		ed := mdb.Editor()
		mdb.AddSuperUser(ed, "root", "localhost", cfg.RootPassword)
		mdb.AddSuperUser(ed, "root", "%", cfg.RootPassword)
		ed.Close()
	}
	s.engine.Analyzer.Catalog.MySQLDb.SetPersister(s.grants)
	return s, nil
}

// Serve accepts connections until Close. It blocks.
func (s *Server) Serve() error {
	return s.gmsSrv.Start()
}

// Addr is the address clients connect to.
func (s *Server) Addr() net.Addr {
	return s.gmsSrv.Listener.Addr()
}

// Engine exposes the go-mysql-server engine (for in-process use and tests).
func (s *Server) Engine() *sqle.Engine { return s.engine }

// Close stops accepting connections, closes the open ones (their
// transactions roll back) and releases the engine.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.gmsSrv != nil {
			err = s.gmsSrv.Close()
		}
		// Each closed connection's goroutine ends its session (rolling back
		// its transaction) through handler.ConnectionClosed.
		s.conns.Range(func(k, v any) bool {
			v.(*mysql.Conn).Close()
			s.conns.Delete(k)
			return true
		})
		// The engine's background threads report their own cancellation.
		if cerr := s.engine.Close(); cerr != nil && !errors.Is(cerr, context.Canceled) && err == nil {
			err = cerr
		}
	})
	return err
}

// StatementRetries is how many autocommit statements were re-run after a
// serialization failure since start.
func (s *Server) StatementRetries() int64 { return s.metrics.retries.Load() }

func (s *Server) session(connID uint32) *Session {
	v, ok := s.sessions.Load(connID)
	if !ok {
		return nil
	}
	return v.(*Session)
}

func (s *Server) addr() string {
	if s.gmsSrv != nil {
		return s.gmsSrv.Listener.Addr().String()
	}
	return s.cfg.Address
}

// What a JDBC application does on a first day, through the gateway, as JSON lines.
//
// Usage: java -cp <dir>:/usr/share/java/postgresql.jar JdbcSmoke <jdbc-url> <user> <password>
//
// Prints one line per check: {"check":"<name>","ok":true|false,"value":<json>[,"error":"…","sqlstate":"…"]}.
// A failing check does not stop the others (the connection is reopened if it broke), so
// one run tells everything that works and everything that does not. Exit status: 0 when
// every check passed, 1 otherwise, 2 for bad usage. Uses only the JDK and pgjdbc.

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

public final class JdbcSmoke {
  private interface Check {
    Object run(Connection c) throws Exception;
  }

  private static String url;
  private static String user;
  private static String password;
  private static Connection conn;
  private static boolean allOk = true;

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: JdbcSmoke <jdbc-url> <user> <password>");
      System.exit(2);
    }
    // Whatever the machine's locale, print UTF-8: the checks round-trip non-ASCII text.
    System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8"));
    url = args[0];
    user = args[1];
    password = args[2];

    try {
      conn = open();
      emit("connect", true, conn.isValid(5), null);
    } catch (SQLException e) {
      emitError("connect", e);
      System.exit(1);
    }

    check("metadata", c -> {
      DatabaseMetaData md = c.getMetaData();
      Map<String, Object> v = new LinkedHashMap<>();
      v.put("product", md.getDatabaseProductName());
      v.put("version", md.getDatabaseProductVersion());
      v.put("driver", md.getDriverName() + " " + md.getDriverVersion());
      return v;
    });

    check("prepared", c -> {
      // With prepareThreshold=1 in the URL pgjdbc uses a named server-side statement from the
      // first execution; running it several times exercises Parse once, then Bind/Execute.
      List<Object> runs = new ArrayList<>();
      try (PreparedStatement ps = c.prepareStatement(
          "SELECT ?::int4 AS i, ?::text AS t, ?::timestamp AS ts, ?::bytea AS b, ?::text AS n")) {
        for (int round = 0; round < 3; round++) {
          ps.setInt(1, 42 + round);
          ps.setString(2, "héllo, wörld ✓ " + round);
          ps.setTimestamp(3, Timestamp.valueOf("2024-02-29 13:45:30.123456"));
          ps.setBytes(4, new byte[] {0, 1, 2, (byte) 0xff, (byte) 0x80, (byte) round});
          ps.setNull(5, Types.VARCHAR);
          try (ResultSet rs = ps.executeQuery()) {
            if (!rs.next()) throw new IllegalStateException("no row");
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("i", rs.getInt("i"));
            row.put("t", rs.getString("t"));
            row.put("ts", rs.getTimestamp("ts").toString());
            row.put("b", hex(rs.getBytes("b")));
            String n = rs.getString("n");
            row.put("n", n);
            row.put("nWasNull", rs.wasNull());
            if (rs.next()) throw new IllegalStateException("more than one row");
            runs.add(row);
          }
        }
      }
      return runs;
    });

    check("batch", c -> {
      try (Statement st = c.createStatement()) {
        st.execute("CREATE TEMP TABLE jdbc_batch (id int PRIMARY KEY, name text NOT NULL)");
      }
      int updated = 0;
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_batch (id, name) VALUES (?, ?)")) {
        for (int i = 1; i <= 100; i++) {
          ps.setInt(1, i);
          ps.setString(2, "row " + i);
          ps.addBatch();
        }
        for (int n : ps.executeBatch()) {
          // SUCCESS_NO_INFO (-2) is allowed by the spec; count it as one row.
          updated += n == Statement.SUCCESS_NO_INFO ? 1 : n;
        }
      }
      Map<String, Object> v = new LinkedHashMap<>();
      v.put("updated", updated);
      v.put("count", countBatch(c));
      return v;
    });

    check("rollback", c -> {
      long before = countBatch(c);
      c.setAutoCommit(false);
      try (Statement st = c.createStatement()) {
        st.executeUpdate("INSERT INTO jdbc_batch (id, name) VALUES (1001, 'rolled back')");
        st.executeUpdate("DELETE FROM jdbc_batch WHERE id <= 10");
        long inside = countBatch(c);
        c.rollback();
        c.setAutoCommit(true);
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("before", before);
        v.put("inside", inside);
        v.put("after", countBatch(c));
        return v;
      } finally {
        if (!c.getAutoCommit()) {
          c.rollback();
          c.setAutoCommit(true);
        }
      }
    });

    check("sqlstate", c -> {
      Map<String, Object> v = new LinkedHashMap<>();
      try (Statement st = c.createStatement()) {
        st.executeQuery("SELECT 1 / 0");
        v.put("statement", "no error");
      } catch (SQLException e) {
        v.put("statement", e.getSQLState());
        v.put("message", e.getMessage());
      }
      // The same through a prepared statement: the error arrives after Bind/Execute.
      try (PreparedStatement ps = c.prepareStatement("SELECT 10 / ?")) {
        ps.setInt(1, 0);
        ps.executeQuery();
        v.put("prepared", "no error");
      } catch (SQLException e) {
        v.put("prepared", e.getSQLState());
      }
      try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 7 * 6")) {
        rs.next();
        v.put("after", rs.getInt(1));
      }
      return v;
    });

    check("fetch", c -> {
      // A fetch size inside a transaction makes pgjdbc read through a portal, 500 rows per
      // Execute, instead of loading the whole result.
      c.setAutoCommit(false);
      try (Statement st = c.createStatement()) {
        st.setFetchSize(500);
        long rows = 0;
        long sum = 0;
        try (ResultSet rs = st.executeQuery("SELECT g, md5(g::text) FROM generate_series(1, 10000) g")) {
          while (rs.next()) {
            rows++;
            sum += rs.getLong(1);
          }
        }
        c.commit();
        Map<String, Object> v = new LinkedHashMap<>();
        v.put("rows", rows);
        v.put("sum", sum);
        return v;
      } finally {
        if (!c.getAutoCommit()) {
          c.rollback();
          c.setAutoCommit(true);
        }
      }
    });

    try {
      conn.close();
      emit("close", true, null, null);
    } catch (SQLException e) {
      emitError("close", e);
    }
    System.exit(allOk ? 0 : 1);
  }

  private static Connection open() throws SQLException {
    return DriverManager.getConnection(url, user, password);
  }

  private static long countBatch(Connection c) throws SQLException {
    try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT count(*) FROM jdbc_batch")) {
      rs.next();
      return rs.getLong(1);
    }
  }

  private static void check(String name, Check body) {
    try {
      emit(name, true, body.run(conn), null);
    } catch (Exception e) {
      emitError(name, e);
      try {
        if (conn.isClosed() || !conn.isValid(5)) conn = open();
      } catch (SQLException reopen) {
        emitError("reconnect", reopen);
        System.exit(1);
      }
    }
  }

  private static void emitError(String name, Exception e) {
    Map<String, Object> extra = new LinkedHashMap<>();
    extra.put("error", e.getClass().getName() + ": " + e.getMessage());
    if (e instanceof SQLException) extra.put("sqlstate", ((SQLException) e).getSQLState());
    emit(name, false, null, extra);
  }

  private static void emit(String name, boolean ok, Object value, Map<String, Object> extra) {
    if (!ok) allOk = false;
    Map<String, Object> line = new LinkedHashMap<>();
    line.put("check", name);
    line.put("ok", ok);
    line.put("value", value);
    if (extra != null) line.putAll(extra);
    System.out.println(json(line));
    System.out.flush();
  }

  private static String hex(byte[] bytes) {
    if (bytes == null) return null;
    StringBuilder sb = new StringBuilder();
    for (byte b : bytes) sb.append(String.format("%02x", b & 0xff));
    return sb.toString();
  }

  private static String json(Object v) {
    if (v == null) return "null";
    if (v instanceof Boolean || v instanceof Integer || v instanceof Long) return v.toString();
    if (v instanceof Map) {
      StringBuilder sb = new StringBuilder("{");
      boolean first = true;
      for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
        if (!first) sb.append(',');
        first = false;
        sb.append(json(String.valueOf(e.getKey()))).append(':').append(json(e.getValue()));
      }
      return sb.append('}').toString();
    }
    if (v instanceof List) {
      StringBuilder sb = new StringBuilder("[");
      boolean first = true;
      for (Object o : (List<?>) v) {
        if (!first) sb.append(',');
        first = false;
        sb.append(json(o));
      }
      return sb.append(']').toString();
    }
    String s = v.toString();
    StringBuilder sb = new StringBuilder("\"");
    for (int i = 0; i < s.length(); i++) {
      char ch = s.charAt(i);
      switch (ch) {
        case '"': sb.append("\\\""); break;
        case '\\': sb.append("\\\\"); break;
        case '\n': sb.append("\\n"); break;
        case '\r': sb.append("\\r"); break;
        case '\t': sb.append("\\t"); break;
        default:
          if (ch < 0x20) sb.append(String.format("\\u%04x", (int) ch));
          else sb.append(ch);
      }
    }
    return sb.append('"').toString();
  }
}

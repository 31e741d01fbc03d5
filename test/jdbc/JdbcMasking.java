import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

/**
 * Reads the masking test's tables through the gateway as a Java application would: a server-side
 * prepared statement (prepareThreshold=1, so pgjdbc describes the statement once and then only
 * binds and executes it, with binary transfer for the types it reads in binary), and a plain
 * statement. Prints every value it got, one per line, as "column=value".
 */
public class JdbcMasking {
  public static void main(String[] args) throws Exception {
    System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8"));
    Properties props = new Properties();
    props.setProperty("user", args[1]);
    props.setProperty("password", args[2]);
    try (Connection c = DriverManager.getConnection(args[0], props)) {
      try (PreparedStatement ps = c.prepareStatement(
          "SELECT c.id, c.email, c.ssn, p.card_number, p.amount, p.created_at FROM customers c JOIN payments p ON p.customer_id = c.id WHERE p.amount > ?")) {
        for (int round = 0; round < 3; round++) {
          ps.setBigDecimal(1, new java.math.BigDecimal(round));
          try (ResultSet rs = ps.executeQuery()) {
            while (rs.next()) {
              System.out.println("email=" + rs.getString("email"));
              System.out.println("ssn=" + rs.getString("ssn"));
              System.out.println("card=" + rs.getString("card_number"));
              System.out.println("amount=" + rs.getBigDecimal("amount"));
              System.out.println("created_at=" + rs.getTimestamp("created_at").toInstant());
            }
          }
        }
      }
      try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT row_to_json(c)::text AS doc FROM customers c")) {
        while (rs.next()) System.out.println("doc=" + rs.getString("doc"));
      }
    }
  }
}

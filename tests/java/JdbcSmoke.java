// pgjdbc against a Gnomon server: prepared statements, batches, transactions, generated keys,
// SQLSTATE errors, ResultSetMetaData. Usage: java -cp postgresql.jar JdbcSmoke.java PORT
import java.sql.*;

public class JdbcSmoke {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/gnomon";
        try (Connection c = DriverManager.getConnection(url, "gnomon", "")) {
            try (Statement s = c.createStatement()) {
                s.execute("DROP TABLE IF EXISTS jd");
                s.execute("CREATE TABLE jd (id bigserial PRIMARY KEY, name varchar(20) UNIQUE, amount numeric(10,2))");
            }
            c.setAutoCommit(false);
            try (PreparedStatement p = c.prepareStatement("INSERT INTO jd (name, amount) VALUES (?, ?)")) {
                for (int i = 1; i <= 10; i++) {
                    p.setString(1, "n" + i);
                    p.setBigDecimal(2, new java.math.BigDecimal(i + ".5"));
                    p.addBatch();
                }
                int[] counts = p.executeBatch();
                check(counts.length == 10, "batch count");
            }
            c.commit();
            try (PreparedStatement p = c.prepareStatement("SELECT id, name, amount FROM jd WHERE amount > ? ORDER BY id")) {
                p.setBigDecimal(1, new java.math.BigDecimal("8"));
                try (ResultSet rs = p.executeQuery()) {
                    ResultSetMetaData md = rs.getMetaData();
                    check(md.getColumnCount() == 3, "columns");
                    check(md.getColumnName(2).equals("name"), "column name");
                    int n = 0;
                    while (rs.next()) {
                        n++;
                        check(rs.getString("name").startsWith("n"), "name value");
                    }
                    check(n == 3, "rows " + n);
                }
            }
            try (Statement s = c.createStatement()) {
                s.execute("INSERT INTO jd (name) VALUES ('n1')");
                throw new AssertionError("duplicate accepted");
            } catch (SQLException e) {
                check("23505".equals(e.getSQLState()), "sqlstate " + e.getSQLState());
                c.rollback();
            }
            try (PreparedStatement p = c.prepareStatement("UPDATE jd SET amount = amount * 2 WHERE name = ?")) {
                p.setString(1, "n2");
                check(p.executeUpdate() == 1, "update count");
            }
            c.commit();
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT amount FROM jd WHERE name = 'n2'")) {
                check(rs.next() && rs.getBigDecimal(1).compareTo(new java.math.BigDecimal("5.00")) == 0, "updated amount");
            }
        }
        // Arrays: createArrayOf as a parameter of = ANY(?), getArray on an array result.
        try (Connection c = DriverManager.getConnection(url, "gnomon", "")) {
            try (PreparedStatement p = c.prepareStatement(
                    "SELECT array_agg(name ORDER BY id), ARRAY[id, id * 10] FROM jd WHERE id = ANY(?) GROUP BY id ORDER BY id")) {
                p.setArray(1, c.createArrayOf("int8", new Long[] {3L, 1L, 99L}));
                try (ResultSet rs = p.executeQuery()) {
                    check(rs.next(), "first array row");
                    String[] names = (String[]) rs.getArray(1).getArray();
                    check(names.length == 1 && names[0].equals("n1"), "names " + java.util.Arrays.toString(names));
                    Long[] ids = (Long[]) rs.getArray(2).getArray();
                    check(ids.length == 2 && ids[0] == 1L && ids[1] == 10L, "ids " + java.util.Arrays.toString(ids));
                    check(rs.getMetaData().getColumnTypeName(2).equals("_int8"), "type " + rs.getMetaData().getColumnTypeName(2));
                    check(rs.next() && !rs.next(), "two array rows");
                }
            }
        }
        System.out.println("pgjdbc ok");
    }
}

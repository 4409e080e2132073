package mariadb

import (
	"fmt"
	"strings"
)

// Markers that find the workload's special statements in the slow log.
const (
	MultiLineMarker = "slowlog-multiline-marker"
	CommentMarker   = "slowlog-comment-marker"
)

// MultiLineQuery is the workload's multi-line statement: a '#' comment line
// inside it must not split it, and it must arrive whole, in one entry.
const MultiLineQuery = `SELECT /* ` + MultiLineMarker + ` */ c.name,
       COUNT(o.id) AS orders,
       SUM(o.total) AS revenue
  FROM customers c
  LEFT JOIN orders o ON o.customer_id = c.id
# only real customers
 WHERE c.id > 0 -- skip the sentinel row
 GROUP BY c.name
 ORDER BY revenue DESC;`

// CommentedQuery is a single-line statement holding a comment.
const CommentedQuery = "SELECT 42 /* " + CommentMarker + " */;"

// Workload returns SQL for Exec that writes every shape of slow-log entry
// (with long_query_time=0 each statement is one entry), and how many
// statements it runs: single-line statements in a loop, a SLEEP so that
// the entries after it get a new "# Time:" line, MultiLineQuery,
// CommentedQuery, a statement after a "--" comment line, one with a
// newline inside a string, and statements in another database (a "use"
// line in their entries). rows scales the loop.
func Workload(rows int) (sql string, statements int) {
	var w strings.Builder
	w.WriteString("CREATE DATABASE shop;\nUSE shop;\n")
	w.WriteString("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL);\n")
	w.WriteString("CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2), note TEXT, KEY (customer_id));\n")
	statements = 4
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(&w, "INSERT INTO customers VALUES (%d, 'customer %d');\n", i, i)
		fmt.Fprintf(&w, "INSERT INTO orders (customer_id, total, note) VALUES (%d, %d.50, 'note;%d'), (%d, 1.25, NULL);\n", i, i*3, i, i)
		fmt.Fprintf(&w, "SELECT name FROM customers WHERE id = %d;\n", i)
		statements += 3
	}
	w.WriteString("SELECT SLEEP(1.1);\n") // the next entries get a new "# Time:" line
	w.WriteString(MultiLineQuery + "\n")
	w.WriteString(CommentedQuery + "\n")
	w.WriteString("-- a comment line before a statement\nUPDATE orders SET total = total * 2 WHERE customer_id = 3;\n")
	w.WriteString("INSERT INTO orders (customer_id, total, note) VALUES (1, 9.99, 'two\nlines');\n")
	w.WriteString("USE mysql;\nSELECT COUNT(*) FROM user;\nUSE shop;\nDELETE FROM orders WHERE total < 2;\n")
	statements += 10
	return w.String(), statements
}

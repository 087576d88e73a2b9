"""The producer side: what upstream systems and operators use to send payment requests.

The queue issue adds the client API and the `submit deposit|withdraw|transfer|file|status` commands; this
package never touches the database tables, it only sends messages and reads outcomes.
"""

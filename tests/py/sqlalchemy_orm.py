"""SQLAlchemy 2 against a Gnomon server, over one dialect: first connect (version check,
hstore probe), metadata.create_all with a SERIAL primary key (has_table reads pg_class /
pg_namespace with pg_table_is_visible and = ANY(ARRAY[...])), ORM inserts, queries, an
update and a delete through a Session, a unique violation surfacing as IntegrityError,
drop_all. (Reflection: sqlalchemy_reflect.py.)

Usage: sqlalchemy_orm.py PORT DIALECT   (DIALECT: psycopg2 or psycopg)"""

import sys

from sqlalchemy import Integer, String, create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

port, dialect = int(sys.argv[1]), sys.argv[2]
table = f"sa_items_{dialect}"
engine = create_engine(f"postgresql+{dialect}://gnomon@127.0.0.1:{port}/gnomon")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = table
    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # SERIAL
    name: Mapped[str] = mapped_column(String(50), unique=True)  # NOT NULL
    qty: Mapped[int] = mapped_column(Integer, default=0)


Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)
insp = inspect(engine)
assert insp.has_table(table), "has_table misses the created table"
assert not insp.has_table("sa_no_such_table")
# create_all again finds the table and creates nothing (a second CREATE would fail).
Base.metadata.create_all(engine)

with Session(engine) as s:
    s.add_all([Item(name="apple", qty=3), Item(name="pear"), Item(name="plum", qty=7)])
    s.commit()
    ids = s.scalars(select(Item.id).order_by(Item.id)).all()
    assert ids == [1, 2, 3], ids
    pear = s.scalars(select(Item).where(Item.name == "pear")).one()
    assert pear.qty == 0, pear.qty
    pear.qty = 5
    s.commit()
    rows = s.execute(select(Item.name, Item.qty).where(Item.qty >= 5).order_by(Item.name)).all()
    assert [tuple(r) for r in rows] == [("pear", 5), ("plum", 7)], rows
    s.delete(s.get(Item, 1))
    s.commit()
    assert s.scalars(select(Item.name).order_by(Item.id)).all() == ["pear", "plum"]

    s.add(Item(name="plum"))
    try:
        s.commit()
        raise AssertionError("duplicate name accepted")
    except IntegrityError as e:
        code = getattr(e.orig, "pgcode", None) or getattr(e.orig, "sqlstate", None)
        assert code == "23505", (code, e)
        s.rollback()
    assert s.scalars(select(Item.id).where(Item.name == "plum")).one() == 3

Base.metadata.drop_all(engine)
assert not inspect(engine).has_table(table)
print(f"sqlalchemy over {dialect}: ok")

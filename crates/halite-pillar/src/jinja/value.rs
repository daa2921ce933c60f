//! Values in templates as Python has them: mutable lists and dicts, printed with `str()`.
//!
//! MiniJinja's own lists and maps are immutable, but Salt templates grow data in place
//! (`{% do users.append(u) %}`, `{% do conf.update(extra) %}`). So every list and dict a
//! template sees — context data, `salt[...]` results and (through [`super::preprocess`])
//! the template's own `[...]` and `{...}` literals — is a [`PyList`] or [`PyDict`]: shared by
//! reference as in Python, changed in place by their methods.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use halite_yaml::{py, Value};
use minijinja::value::{Enumerator, Object, ObjectRepr, Value as MjValue, ValueKind};
use minijinja::{Error, ErrorKind, State};

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A Python `list`.
#[derive(Debug, Default)]
pub struct PyList(Mutex<Vec<MjValue>>);

/// A Python `dict`: insertion-ordered, keys compared with `==`.
#[derive(Debug, Default)]
pub struct PyDict(Mutex<Vec<(MjValue, MjValue)>>);

pub fn list(items: Vec<MjValue>) -> MjValue {
    MjValue::from_object(PyList(Mutex::new(items)))
}

pub fn dict(pairs: Vec<(MjValue, MjValue)>) -> MjValue {
    MjValue::from_object(PyDict(Mutex::new(pairs)))
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

fn arity(method: &str, args: &[MjValue], min: usize, max: usize) -> Result<(), Error> {
    if args.len() < min || args.len() > max {
        return Err(invalid(format!("{method}() takes {min} to {max} arguments ({} given)", args.len())));
    }
    Ok(())
}

/// Python's `==` on template values: numbers by value (`1 == 1.0 == True`).
pub fn py_eq(a: &MjValue, b: &MjValue) -> bool {
    fn number(v: &MjValue) -> Option<f64> {
        match v.kind() {
            ValueKind::Bool => Some(if v.is_true() { 1.0 } else { 0.0 }),
            ValueKind::Number => f64::try_from(v.clone()).ok(),
            _ => None,
        }
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

impl PyList {
    pub fn items(&self) -> Vec<MjValue> {
        locked(&self.0).clone()
    }
}

impl PyDict {
    pub fn pairs(&self) -> Vec<(MjValue, MjValue)> {
        locked(&self.0).clone()
    }

    pub fn get(&self, key: &MjValue) -> Option<MjValue> {
        locked(&self.0).iter().find(|(k, _)| py_eq(k, key)).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: MjValue, value: MjValue) {
        let mut pairs = locked(&self.0);
        match pairs.iter_mut().find(|(k, _)| py_eq(k, &key)) {
            Some(slot) => slot.1 = value,
            None => pairs.push((key, value)),
        }
    }
}

/// The (key, value) pairs of any mapping value.
pub fn map_pairs(v: &MjValue) -> Result<Vec<(MjValue, MjValue)>, Error> {
    if let Some(d) = v.downcast_object_ref::<PyDict>() {
        return Ok(d.pairs());
    }
    if v.kind() != ValueKind::Map {
        return Err(invalid(format!("{} is not a dict", v.kind())));
    }
    v.try_iter()?.map(|k| v.get_item(&k).map(|val| (k, val))).collect()
}

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let items = locked(&self.0);
        let idx = i64::try_from(key.clone()).ok()?;
        let idx = if idx < 0 { items.len() as i64 + idx } else { idx };
        items.get(usize::try_from(idx).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.items())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(locked(&self.0).len())
    }

    fn call_method(self: &Arc<Self>, _: &mut State<'_, '_>, method: &str, args: &[MjValue]) -> Result<MjValue, Error> {
        let mut items = locked(&self.0);
        match method {
            "append" => {
                arity(method, args, 1, 1)?;
                items.push(args[0].clone());
            }
            "extend" => {
                arity(method, args, 1, 1)?;
                let more: Vec<MjValue> = args[0].try_iter()?.collect();
                items.extend(more);
            }
            "insert" => {
                arity(method, args, 2, 2)?;
                let len = items.len() as i64;
                let at = i64::try_from(args[0].clone())?;
                let at = if at < 0 { (len + at).max(0) } else { at.min(len) };
                items.insert(at as usize, args[1].clone());
            }
            "pop" => {
                arity(method, args, 0, 1)?;
                let len = items.len() as i64;
                let at = match args.first() {
                    Some(i) => i64::try_from(i.clone())?,
                    None => -1,
                };
                let at = if at < 0 { len + at } else { at };
                if at < 0 || at >= len {
                    return Err(invalid("pop index out of range"));
                }
                return Ok(items.remove(at as usize));
            }
            "remove" => {
                arity(method, args, 1, 1)?;
                let at = items
                    .iter()
                    .position(|x| py_eq(x, &args[0]))
                    .ok_or_else(|| invalid("list.remove(x): x not in list"))?;
                items.remove(at);
            }
            "index" => {
                arity(method, args, 1, 1)?;
                let at = items.iter().position(|x| py_eq(x, &args[0])).ok_or_else(|| invalid("x not in list"))?;
                return Ok(MjValue::from(at));
            }
            "count" => {
                arity(method, args, 1, 1)?;
                return Ok(MjValue::from(items.iter().filter(|x| py_eq(x, &args[0])).count()));
            }
            "reverse" => items.reverse(),
            "sort" => items.sort(),
            "clear" => items.clear(),
            "copy" => return Ok(list(items.clone())),
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        }
        Ok(MjValue::from(()))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&py_str(&MjValue::from_dyn_object(self.clone())))
    }
}

impl Object for PyDict {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        self.get(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(locked(&self.0).iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(locked(&self.0).len())
    }

    fn call_method(self: &Arc<Self>, _: &mut State<'_, '_>, method: &str, args: &[MjValue]) -> Result<MjValue, Error> {
        match method {
            "get" => {
                arity(method, args, 1, 2)?;
                Ok(self.get(&args[0]).unwrap_or_else(|| args.get(1).cloned().unwrap_or(MjValue::from(()))))
            }
            "items" => {
                arity(method, args, 0, 0)?;
                let items = self.pairs().into_iter().map(|(k, v)| tuple(vec![k, v])).collect();
                Ok(MjValue::from_object(PyView { kind: "dict_items", items }))
            }
            "keys" => {
                arity(method, args, 0, 0)?;
                let items = self.pairs().into_iter().map(|(k, _)| k).collect();
                Ok(MjValue::from_object(PyView { kind: "dict_keys", items }))
            }
            "values" => {
                arity(method, args, 0, 0)?;
                let items = self.pairs().into_iter().map(|(_, v)| v).collect();
                Ok(MjValue::from_object(PyView { kind: "dict_values", items }))
            }
            "update" => {
                for arg in args {
                    if arg.kind() == ValueKind::Map {
                        for (k, v) in map_pairs(arg)? {
                            self.insert(k, v);
                        }
                    } else {
                        // Keyword arguments arrive as a trailing map, handled above; a list
                        // of pairs is Python's other form.
                        for pair in arg.try_iter()? {
                            let kv: Vec<MjValue> = pair.try_iter()?.collect();
                            let [k, v] = <[MjValue; 2]>::try_from(kv)
                                .map_err(|_| invalid("dict.update() sequence element is not a pair"))?;
                            self.insert(k, v);
                        }
                    }
                }
                Ok(MjValue::from(()))
            }
            "setdefault" => {
                arity(method, args, 1, 2)?;
                if let Some(v) = self.get(&args[0]) {
                    return Ok(v);
                }
                let v = args.get(1).cloned().unwrap_or(MjValue::from(()));
                self.insert(args[0].clone(), v.clone());
                Ok(v)
            }
            "pop" => {
                arity(method, args, 1, 2)?;
                let mut pairs = locked(&self.0);
                match pairs.iter().position(|(k, _)| py_eq(k, &args[0])) {
                    Some(i) => Ok(pairs.remove(i).1),
                    None => args.get(1).cloned().ok_or_else(|| invalid(format!("KeyError: {}", py_repr(&args[0])))),
                }
            }
            "copy" => Ok(dict(self.pairs())),
            "clear" => {
                locked(&self.0).clear();
                Ok(MjValue::from(()))
            }
            "has_key" => {
                arity(method, args, 1, 1)?;
                Ok(MjValue::from(self.get(&args[0]).is_some()))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&py_str(&MjValue::from_dyn_object(self.clone())))
    }
}

/// A loaded value as a template sees it.
pub fn to_jinja(v: &Value) -> MjValue {
    match v {
        Value::Nil | Value::Ext(..) => MjValue::from(()),
        Value::Boolean(b) => MjValue::from(*b),
        Value::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => MjValue::from(n),
            (None, Some(n)) => MjValue::from(n),
            _ => MjValue::from(()),
        },
        Value::F32(f) => MjValue::from(f64::from(*f)),
        Value::F64(f) => MjValue::from(*f),
        Value::String(s) => match s.as_str() {
            Some(text) => MjValue::from(text),
            None => MjValue::from_bytes(s.as_bytes().to_vec()),
        },
        Value::Binary(b) => MjValue::from_bytes(b.clone()),
        Value::Array(items) => list(items.iter().map(to_jinja).collect()),
        Value::Map(pairs) => dict(pairs.iter().map(|(k, v)| (to_jinja(k), to_jinja(v))).collect()),
    }
}

/// A template value as data (for YAML/JSON output and for Salt functions' arguments).
/// Undefined becomes `None`, as Jinja's default `Undefined` prints as nothing and tests false.
pub fn to_value(v: &MjValue) -> Result<Value, Error> {
    Ok(match v.kind() {
        ValueKind::Undefined | ValueKind::None => Value::Nil,
        ValueKind::Bool => Value::Boolean(v.is_true()),
        ValueKind::Number => {
            if v.is_integer() {
                if let Ok(n) = i64::try_from(v.clone()) {
                    Value::from(n)
                } else if let Ok(n) = u64::try_from(v.clone()) {
                    Value::from(n)
                } else {
                    return Err(invalid(format!("the integer {v} does not fit 64 bits")));
                }
            } else {
                Value::F64(f64::try_from(v.clone())?)
            }
        }
        ValueKind::String => Value::from(v.as_str().unwrap_or_default()),
        ValueKind::Bytes => Value::Binary(v.as_bytes().unwrap_or_default().to_vec()),
        ValueKind::Map => Value::Map(
            map_pairs(v)?.iter().map(|(k, v)| Ok((to_value(k)?, to_value(v)?))).collect::<Result<_, Error>>()?,
        ),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<MjValue> = match v.downcast_object_ref::<PyList>() {
                Some(l) => l.items(),
                None => v.try_iter()?.collect(),
            };
            Value::Array(items.iter().map(to_value).collect::<Result<_, _>>()?)
        }
        _ => return Err(invalid(format!("{v} cannot be used as data"))),
    })
}

/// Python's `str()` of a template value.
pub fn py_str(v: &MjValue) -> String {
    match v.kind() {
        ValueKind::String => v.as_str().unwrap_or_default().to_owned(),
        ValueKind::Undefined => String::new(),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable => py_repr(v),
        _ => match to_value(v) {
            Ok(data) => py::text(&data),
            Err(_) => v.to_string(),
        },
    }
}

/// Python's `repr()` of a template value: lists, tuples, dicts and dict views in their
/// literal syntax, recursively.
pub fn py_repr(v: &MjValue) -> String {
    let join = |items: &[MjValue]| items.iter().map(py_repr).collect::<Vec<_>>().join(", ");
    if let Some(t) = v.downcast_object_ref::<PyTuple>() {
        return match t.0.as_slice() {
            [one] => format!("({},)", py_repr(one)),
            items => format!("({})", join(items)),
        };
    }
    if let Some(view) = v.downcast_object_ref::<PyView>() {
        return format!("{}([{}])", view.kind, join(&view.items));
    }
    match v.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<MjValue> = match v.downcast_object_ref::<PyList>() {
                Some(l) => l.items(),
                None => v.try_iter().map(Iterator::collect).unwrap_or_default(),
            };
            format!("[{}]", join(&items))
        }
        ValueKind::Map => match map_pairs(v) {
            Ok(pairs) => format!(
                "{{{}}}",
                pairs.iter().map(|(k, val)| format!("{}: {}", py_repr(k), py_repr(val))).collect::<Vec<_>>().join(", ")
            ),
            Err(_) => v.to_string(),
        },
        _ => match to_value(v) {
            Ok(data) => py::repr(&data),
            Err(_) => v.to_string(),
        },
    }
}

/// A Python `tuple`: what `regex_search`, `dictsort` and `dict.items()` give. Printed with
/// parentheses (which the YAML after Jinja then reads as text, as Salt's does); sent as a
/// list, as msgpack sends tuples.
#[derive(Debug)]
pub struct PyTuple(pub Vec<MjValue>);

pub fn tuple(items: Vec<MjValue>) -> MjValue {
    MjValue::from_object(PyTuple(items))
}

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let idx = i64::try_from(key.clone()).ok()?;
        let idx = if idx < 0 { self.0.len() as i64 + idx } else { idx };
        self.0.get(usize::try_from(idx).ok()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.clone())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&py_repr(&MjValue::from_dyn_object(self.clone())))
    }
}

/// `dict.keys()`, `.values()`, `.items()`: iterable, printed as Python prints the view.
#[derive(Debug)]
pub struct PyView {
    kind: &'static str,
    items: Vec<MjValue>,
}

impl Object for PyView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, _key: &MjValue) -> Option<MjValue> {
        // Python's views are not subscriptable.
        None
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.items.clone())
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&py_repr(&MjValue::from_dyn_object(self.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_prints_as_python() {
        let data = halite_yaml::load("a: [1, 'x', null, true, 1.5]\nb: {c: d}\n").unwrap();
        let v = to_jinja(&data);
        assert_eq!(to_value(&v).unwrap(), data);
        assert_eq!(py_str(&v), "{'a': [1, 'x', None, True, 1.5], 'b': {'c': 'd'}}");
        assert_eq!(py_str(&tuple(vec![MjValue::from("a")])), "('a',)");
        assert_eq!(py_str(&list(vec![tuple(vec![MjValue::from(1), MjValue::from(())])])), "[(1, None)]");
    }
}

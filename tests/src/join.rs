//! A join of many futures polled in a fixed order, so that on every runtime the tasks of a
//! scenario that are ready at one instant run in the same order (their index order).

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// A boxed future of a scenario's task.
pub type Task<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `tasks` together: each poll polls every unfinished task in index order. Resolves
/// to their outputs, in index order, once all are done.
pub fn join_all<T: Unpin>(tasks: Vec<Task<'_, T>>) -> JoinAll<'_, T> {
    let outputs = tasks.iter().map(|_| None).collect();
    JoinAll {
        tasks: tasks.into_iter().map(Some).collect(),
        outputs,
    }
}

/// The future of [`join_all`].
pub struct JoinAll<'a, T> {
    tasks: Vec<Option<Task<'a, T>>>,
    outputs: Vec<Option<T>>,
}

impl<T: Unpin> Future for JoinAll<'_, T> {
    type Output = Vec<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
        let this = self.get_mut();
        for (task, output) in this.tasks.iter_mut().zip(this.outputs.iter_mut()) {
            if let Some(fut) = task
                && let Poll::Ready(value) = fut.as_mut().poll(cx)
            {
                *output = Some(value);
                *task = None;
            }
        }
        if this.tasks.iter().all(Option::is_none) {
            Poll::Ready(this.outputs.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_come_in_index_order() {
        let tasks: Vec<Task<'_, u32>> = vec![
            Box::pin(async { 1 }),
            Box::pin(async { 2 }),
            Box::pin(async { 3 }),
        ];
        let mut join = core::pin::pin!(join_all(tasks));
        let mut cx = Context::from_waker(core::task::Waker::noop());
        assert_eq!(join.as_mut().poll(&mut cx), Poll::Ready(vec![1, 2, 3]));
    }
}
